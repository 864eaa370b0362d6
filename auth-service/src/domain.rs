//! Parsing what clients send into values that are known to be valid.

use common::problem::FieldError;

pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_CHARS: usize = 128;
pub const NAME_MAX_CHARS: usize = 200;
pub const EMAIL_MAX_CHARS: usize = 254;

/// An email address in the shape `local@domain.tld`, compared case-insensitively.
pub fn check_email(email: &str, errors: &mut Vec<FieldError>) {
    let email = email.trim();
    let valid = email.chars().count() <= EMAIL_MAX_CHARS
        && !email.chars().any(char::is_whitespace)
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains("..")
            }
            None => false,
        };
    if !valid {
        errors.push(FieldError::new("email", "must be a valid email address"));
    }
}

pub fn check_password(password: &str, errors: &mut Vec<FieldError>) {
    let chars = password.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        errors.push(FieldError::new("password", format!("must be at least {PASSWORD_MIN_CHARS} characters")));
    } else if chars > PASSWORD_MAX_CHARS {
        errors.push(FieldError::new("password", format!("must be at most {PASSWORD_MAX_CHARS} characters")));
    }
}

pub fn check_name(name: &str, errors: &mut Vec<FieldError>) {
    let chars = name.trim().chars().count();
    if chars == 0 {
        errors.push(FieldError::new("name", "must not be empty"));
    } else if chars > NAME_MAX_CHARS {
        errors.push(FieldError::new("name", format!("must be at most {NAME_MAX_CHARS} characters")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email_ok(email: &str) -> bool {
        let mut errors = vec![];
        check_email(email, &mut errors);
        errors.is_empty()
    }

    #[test]
    fn plausible_emails_pass_and_malformed_ones_do_not() {
        assert!(email_ok("ada@example.com"));
        assert!(email_ok("Ada.Lovelace+shop@mail.example.co.uk"));
        for bad in ["", "ada", "ada@", "@example.com", "ada@example", "a b@example.com", "a@b@c.com", "ada@.com"] {
            assert!(!email_ok(bad), "{bad:?} passed");
        }
    }

    #[test]
    fn passwords_are_counted_in_characters_not_bytes() {
        let mut errors = vec![];
        check_password("ééééééééé", &mut errors); // 9 chars, 18 bytes
        assert_eq!(errors.len(), 1);
        let mut errors = vec![];
        check_password(&"é".repeat(128), &mut errors);
        assert!(errors.is_empty());
        check_password(&"x".repeat(129), &mut errors);
        assert_eq!(errors.len(), 1);
    }
}
