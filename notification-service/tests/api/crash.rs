//! The notification-service binary killed with SIGKILL in the middle of a burst.

use std::collections::HashMap;
use std::time::Duration;

use common::bus::Publisher;
use common::test_util::{
    ChildService, TcpProxy, eventually, fresh_mysql_database, kafka_group_settles, mailpit_subjects, unique_name,
};
use uuid::Uuid;

use crate::support::{Stack, event, message};

const BINARY: &str = env!("CARGO_BIN_EXE_notification-service");

/// Emails Mailpit holds for `address`, counted per order id (from the subject).
async fn emails_per_order(mailpit: &str, address: &str, orders: &[Uuid]) -> HashMap<Uuid, usize> {
    let mut counts = HashMap::new();
    for subject in mailpit_subjects(mailpit, address).await {
        if let Some(order) = orders.iter().find(|o| subject.contains(&o.to_string())) {
            *counts.entry(*order).or_default() += 1;
        }
    }
    counts
}

/// Events the service has recorded as handled.
async fn recorded(db: &url::Url) -> usize {
    let pool = sqlx::MySqlPool::connect(db.as_str()).await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM processed_events").fetch_one(&pool).await.unwrap();
    pool.close().await;
    usize::try_from(n).unwrap()
}

#[tokio::test]
async fn killed_with_sigkill_mid_burst_and_restarted_every_event_is_emailed_exactly_once() {
    let Some(stack) = Stack::from_env() else { return };
    let Stack { brokers, mysql: base, mailpit, .. } = &stack;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("notification-service.log");
    let topic = unique_name("orders-kill");
    let group = unique_name("notification-kill");
    let address = format!("{}@example.com", unique_name("burst"));

    // 200 events waiting before the service starts: a burst from the first poll.
    let producer = stack.producer();
    let orders: Vec<Uuid> = (0..200).map(|_| Uuid::now_v7()).collect();
    for order in &orders {
        producer.publish(message(&topic, &event("order.confirmed", *order, &address))).await.unwrap();
    }

    // The mail server behind a proxy the test can hold: the kill then lands where the
    // service waits on the mail server, never between its acceptance and the record.
    let proxy = TcpProxy::start(stack.smtp_addr()).await;
    let db = fresh_mysql_database(base).await;
    let env = [
        ("DATABASE_URL", db.to_string()),
        ("ECOM_KAFKA_BROKERS", brokers.clone()),
        ("ECOM_ORDERS_TOPIC", topic.clone()),
        ("ECOM_KAFKA_GROUP", group.clone()),
        ("ECOM_SMTP_URL", format!("smtp://{}", proxy.addr)),
    ];
    // Mid-burst by construction: the proxy holds the service's bytes once 40 messages
    // have gone through to the mail server.
    proxy.hold_after(b"\r\n.\r\n", 40);
    let service = ChildService::start(BINARY, &env, &log).await;
    // Quiet at the mail server: the service waits on held bytes, every request let
    // through before the hold is answered, and every email the server accepted is
    // recorded. Only then does no email sit between acceptance and its record. The
    // deadline leaves room for a loaded machine (the group join alone can take seconds);
    // a passing run ends as soon as the service is quiet.
    let quiet = eventually(Duration::from_secs(60), || async {
        if !proxy.client_waiting() || proxy.request_unanswered() {
            return None;
        }
        let accepted: usize = emails_per_order(mailpit, &address, &orders).await.values().sum();
        (recorded(&db).await == accepted).then_some(())
    })
    .await;
    assert!(quiet.is_some(), "the service never settled against the held mail server:\n{}", service.log_tail());
    let before_kill: usize = emails_per_order(mailpit, &address, &orders).await.values().sum();
    assert!(before_kill < orders.len(), "the kill must land mid-burst");
    service.kill().await;
    // Drop the held bytes with their connections before letting anything through again.
    proxy.cut();
    let dropped = eventually(Duration::from_secs(10), || async { (!proxy.client_waiting()).then_some(()) }).await;
    assert!(dropped.is_some(), "the held connection was not dropped");
    proxy.release();
    proxy.restore();

    let service = ChildService::start(BINARY, &env, &log).await;
    // The killed member keeps its partitions until its session times out (10 s).
    let all = eventually(Duration::from_secs(120), || async {
        let counts = emails_per_order(mailpit, &address, &orders).await;
        (counts.len() == orders.len()).then_some(())
    })
    .await;
    let arrived = emails_per_order(mailpit, &address, &orders).await.len();
    assert!(all.is_some(), "{arrived} of 200 orders emailed after the restart:\n{}", service.log_tail());
    // Everything consumed is committed only once handled: once the group is at the end,
    // nothing more can arrive, and the count is final.
    let settled = kafka_group_settles(brokers, &group, &topic, Duration::from_secs(30)).await;
    assert!(settled, "the group never committed the whole topic:\n{}", service.log_tail());
    let counts = emails_per_order(mailpit, &address, &orders).await;
    let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "emails sent twice: {doubled:?}");
    assert_eq!(counts.len(), 200);
    service.kill().await;
}
