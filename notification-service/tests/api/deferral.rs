//! A recipient the mail server keeps deferring, and a mail server that is gone: the
//! first is given up on after its attempts, the second is waited for.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::bus::Publisher;
use common::test_util::{eventually, unique_name};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, watch};
use uuid::Uuid;

use crate::support::{Stack, emails_arrive, emails_to, event, message, start};

/// A mail server in front of Mailpit (a fake of a third party: Mailpit cannot defer
/// one recipient). Every `RCPT TO` naming `deferred` is answered `450 4.2.1` without
/// reaching Mailpit; everything else is relayed. Taken down, it hangs up on every
/// connection, open or new, and counts the new ones.
struct DeferringMailServer {
    addr: SocketAddr,
    deferrals: Arc<AtomicUsize>,
    hang_ups: Arc<AtomicUsize>,
    down: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl DeferringMailServer {
    async fn start(mailpit_smtp: SocketAddr, deferred: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (deferrals, hang_ups) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (down, _) = watch::channel(false);
        let rcpt = format!("RCPT TO:<{}>", deferred.to_ascii_uppercase()).into_bytes();
        let (counted, hung_up, is_down) = (deferrals.clone(), hang_ups.clone(), down.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut down = is_down.subscribe();
                if *down.borrow() {
                    hung_up.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let (rcpt, counted) = (rcpt.clone(), counted.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = relay(client, mailpit_smtp, &rcpt, &counted) => {}
                        _ = down.wait_for(|down| *down) => {}
                    }
                });
            }
        });
        Self { addr, deferrals, hang_ups, down, task }
    }

    fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    fn deferrals(&self) -> usize {
        self.deferrals.load(Ordering::SeqCst)
    }

    fn hang_ups(&self) -> usize {
        self.hang_ups.load(Ordering::SeqCst)
    }

    fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

impl Drop for DeferringMailServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One SMTP session relayed line by line; the client waits for each reply before its
/// next command (no pipelining), so a refused `RCPT` can be answered here.
async fn relay(client: TcpStream, upstream: SocketAddr, rcpt: &[u8], deferrals: &AtomicUsize) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    let (client_read, client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let client_write = Mutex::new(client_write);
    let replies = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = server_read.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            client_write.lock().await.write_all(&buf[..n]).await?;
        }
    };
    let commands = async {
        let mut lines = BufReader::new(client_read);
        let (mut line, mut in_content) = (Vec::new(), false);
        loop {
            line.clear();
            if lines.read_until(b'\n', &mut line).await? == 0 {
                return Ok::<_, std::io::Error>(());
            }
            if in_content {
                in_content = line != b".\r\n";
            } else if line.eq_ignore_ascii_case(b"DATA\r\n") {
                in_content = true;
            } else if line.to_ascii_uppercase().starts_with(rcpt) {
                deferrals.fetch_add(1, Ordering::SeqCst);
                client_write.lock().await.write_all(b"450 4.2.1 Mailbox busy, try again later\r\n").await?;
                continue;
            }
            server_write.write_all(&line).await?;
        }
    };
    tokio::select! {
        result = replies => result,
        result = commands => result,
    }
}

/// A topic with one partition: every event lands in the same partition, so those
/// published before the consumer starts reach it in one fetch, one batch.
async fn one_partition_topic(brokers: &str, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        common::kafka::client_config(brokers, "test").create().unwrap();
    let dlq = format!("{topic}.dlq");
    let topics = [topic, dlq.as_str()].map(|name| NewTopic::new(name, 1, TopicReplication::Fixed(1)));
    for result in admin.create_topics(&topics, &AdminOptions::new()).await.unwrap() {
        result.unwrap();
    }
    std::thread::spawn(move || drop(admin));
}

#[tokio::test]
async fn a_recipient_the_mail_server_keeps_deferring_is_dead_lettered_after_its_attempts_while_other_customers_get_their_email()
 {
    let Some(stack) = Stack::from_env() else { return };
    let stuck = format!("{}@example.com", unique_name("stuck"));
    let other = format!("{}@example.com", unique_name("other"));
    let mail_server = DeferringMailServer::start(stack.smtp_addr(), &stuck).await;
    let topic = unique_name("orders-deferred");
    one_partition_topic(&stack.brokers, &topic).await;

    // The stuck customer's event first, another customer's after it; both wait for
    // the consumer, so they arrive in one batch.
    let producer = stack.producer();
    let stuck_event = event("order.confirmed", Uuid::now_v7(), &stuck);
    producer.publish(message(&topic, &stuck_event)).await.unwrap();
    producer.publish(message(&topic, &event("order.confirmed", Uuid::now_v7(), &other))).await.unwrap();

    let settings = stack.settings(&topic, &mail_server.url()).await;
    let attempts = settings.mail.max_attempts.get() as usize;
    let service = start(settings).await;

    let delivered = emails_arrive(&stack.mailpit, &other, 1, Duration::from_secs(30)).await;
    assert!(delivered, "the other customer's email never arrived");
    let deferred_so_far = mail_server.deferrals();
    assert!(
        deferred_so_far < attempts,
        "the other customer's email must go out while the stuck one is still being retried \
         ({deferred_so_far} of {attempts} attempts made)"
    );

    let (payload, headers) = stack.first_dead_letter(&topic).await;
    let payload: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(payload["id"], stuck_event["id"]);
    assert!(headers["x-error"].contains("450"), "{headers:?}");
    assert!(headers["x-error"].contains(&format!("after {attempts} attempts")), "{headers:?}");
    assert_eq!(mail_server.deferrals(), attempts, "one RCPT per attempt, no more");
    assert_eq!(emails_to(&stack.mailpit, &stuck).await, 0);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn a_mail_server_that_hangs_up_is_retried_past_the_attempt_limit_and_the_email_goes_out_when_it_is_back() {
    let Some(stack) = Stack::from_env() else { return };
    let customer = format!("{}@example.com", unique_name("patient"));
    let mail_server = DeferringMailServer::start(stack.smtp_addr(), "nobody@example.com").await;
    let topic = unique_name("orders-outage");
    one_partition_topic(&stack.brokers, &topic).await;
    let mut settings = stack.settings(&topic, &mail_server.url()).await;
    settings.mail.max_attempts = NonZeroU32::new(2).unwrap();
    let service = start(settings).await;

    mail_server.set_down(true);
    stack.producer().publish(message(&topic, &event("order.confirmed", Uuid::now_v7(), &customer))).await.unwrap();
    // Twice as many attempts as a deferred email gets, all of them hung up on.
    let outlasted = eventually(Duration::from_secs(30), || async { (mail_server.hang_ups() >= 4).then_some(()) }).await;
    assert!(outlasted.is_some(), "the service stopped trying the mail server ({} attempts)", mail_server.hang_ups());
    mail_server.set_down(false);

    let delivered = emails_arrive(&stack.mailpit, &customer, 1, Duration::from_secs(60)).await;
    assert!(delivered, "the email never went out after the mail server came back");
    service.stop().await.unwrap();
}
