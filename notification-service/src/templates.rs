//! Email bodies, in plain text and HTML.

use common::events::{MoneyData, ORDER_CANCELLED, ORDER_CONFIRMED, OrderEvent};
use minijinja::{Environment, context};

/// Every email in plain text: a greeting, what happened (the `intro` block each event's
/// template fills), the lines and the total.
const EMAIL_TEXT: &str = "Hello {{ name }},

{% block intro %}{% endblock %}

{% for line in lines %}  {{ line.quantity }} x {{ line.name }} ({{ line.sku }})  {{ line.price }}
{% endfor %}
Total: {{ total }}

ecom
";

/// Every email in HTML, the same parts as [`EMAIL_TEXT`].
const EMAIL_HTML: &str = "<!doctype html>
<html><body>
<p>Hello {{ name }},</p>
<p>{% block intro %}{% endblock %}</p>
<table>
{% for line in lines %}<tr><td>{{ line.quantity }} &times;</td><td>{{ line.name }} ({{ line.sku }})</td><td>{{ line.price }}</td></tr>
{% endfor %}</table>
<p>Total: <strong>{{ total }}</strong></p>
<p>ecom</p>
</body></html>
";

/// Each email's own templates, by name: what happened, in text and in HTML.
const TEMPLATES: [(&str, &str); 4] = [
    (
        "confirmed.txt",
        r#"{% extends "email.txt" %}{% block intro %}thank you for your order {{ order_id }}. It is confirmed.{% endblock %}"#,
    ),
    (
        "confirmed.html",
        r#"{% extends "email.html" %}{% block intro %}thank you for your order <strong>{{ order_id }}</strong>. It is confirmed.{% endblock %}"#,
    ),
    (
        "cancelled.txt",
        r#"{% extends "email.txt" %}{% block intro %}your order {{ order_id }} has been cancelled.{% endblock %}"#,
    ),
    (
        "cancelled.html",
        r#"{% extends "email.html" %}{% block intro %}your order <strong>{{ order_id }}</strong> has been cancelled.{% endblock %}"#,
    ),
];

/// A rendered email.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Minor units in the currency's own decimals: `12.99 EUR`, `1299 JPY`.
pub fn money(money: &MoneyData) -> String {
    contracts::Money::from(money.clone()).to_string()
}

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        env.add_template("email.txt", EMAIL_TEXT)?;
        env.add_template("email.html", EMAIL_HTML)?;
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        Ok(Self { env })
    }

    /// The email for `event`, or `None` for an event type that sends none.
    pub fn render(&self, event: &OrderEvent) -> Result<Option<Rendered>, minijinja::Error> {
        let (stem, subject) = match event.kind.as_str() {
            ORDER_CONFIRMED => ("confirmed", format!("Your order {} is confirmed", event.data.id)),
            ORDER_CANCELLED => ("cancelled", format!("Your order {} was cancelled", event.data.id)),
            _ => return Ok(None),
        };
        let lines: Vec<_> = event
            .data
            .lines
            .iter()
            .map(|l| {
                context! {
                    sku => l.sku, name => l.name, quantity => l.quantity,
                    price => money(&l.unit_price),
                }
            })
            .collect();
        let ctx = context! {
            name => event.data.customer_name,
            order_id => event.data.id.to_string(),
            lines => lines,
            total => money(&event.data.total),
        };
        let text = self.env.get_template(&format!("{stem}.txt"))?.render(&ctx)?;
        let html = self.env.get_template(&format!("{stem}.html"))?.render(&ctx)?;
        Ok(Some(Rendered { subject, text, html }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_shown_with_as_many_decimals_as_its_currency_has() {
        let money = |amount, code| money(&MoneyData { amount, currency: contracts::Currency::parse(code).unwrap() });
        assert_eq!(money(1299, "EUR"), "12.99 EUR");
        assert_eq!(money(5, "USD"), "0.05 USD");
        assert_eq!(money(1299, "JPY"), "1299 JPY", "yen have no minor unit");
    }

    #[test]
    fn html_escapes_what_customers_typed() {
        let templates = Templates::new().unwrap();
        let event: OrderEvent = serde_json::from_value(serde_json::json!({
            "id": "0192f5a0-0000-7000-8000-000000000001", "type": "order.confirmed", "source": "order-service",
            "time": "2026-11-25T10:00:00Z",
            "data": {"id": "0192f5a0-0000-7000-8000-0000000000aa", "user_id": "0192f5a0-0000-7000-8000-0000000000bb",
                "status": "CONFIRMED", "lines": [{"sku": "MUG-1", "name": "Mug", "quantity": 2, "unit_price": {"amount": 1299, "currency": "EUR"}}],
                "total": {"amount": 2598, "currency": "EUR"}, "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z",
                "customer_email": "ada@example.com", "customer_name": "<script>Ada</script>"}
        }))
        .unwrap();
        let rendered = templates.render(&event).unwrap().unwrap();
        assert!(rendered.html.contains("&lt;script&gt;"));
        assert!(rendered.text.contains("2 x Mug (MUG-1)  12.99 EUR"));
        assert!(rendered.text.contains("Total: 25.98 EUR"));
        assert!(rendered.subject.contains("0192f5a0-0000-7000-8000-0000000000aa"));
    }
}
