//! Passwords: the rules a new password must meet, and hashing with argon2id (the crate's
//! defaults: 19 MiB, two passes).
//!
//! The rules follow OWASP ASVS V2.1: at least 12 characters, no composition rules (no "one
//! digit, one capital"), and no password that is common, breached or built from the person's own
//! name. That last check is [zxcvbn](https://docs.rs/zxcvbn) 3.1: it carries the ranked lists of
//! passwords seen in public breaches (about 30,000, with English words, names and TV and film
//! words), and it also catches the shapes such lists miss (`aaaaaaaaaaaa`, keyboard rows,
//! sequences, dates, `Password123!`) with an estimate of the guesses needed. A password must need
//! at least 10^10 guesses (zxcvbn's score 3, "safely unguessable"), estimated with the account's
//! own user name and display name (with and without Vietnamese diacritics) and the service's
//! name as extra words, so `hoangthimai1990` is refused for Hoàng Thị Mai. A bundled list alone
//! would miss those shapes and would have to be kept up to date by us.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Shortest and longest password accepted; the upper bound keeps hashing cost bounded.
pub const MIN_LEN: usize = 12;
pub const MAX_LEN: usize = 256;

/// Words of this service that make a password easy to guess for anyone attacking it.
const SERVICE_WORDS: [&str; 4] = ["telehealth", "telemedicine", "hoichan", "khambenh"];

/// What to do instead, in every refusal.
const ADVICE: &str = "a few unrelated words (a passphrase such as four words with spaces) are easy to remember and hard to guess";

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("a password must have at least {MIN_LEN} characters (this one has {got}); {ADVICE}")]
    TooShort { got: usize },
    #[error("a password may have at most {MAX_LEN} characters")]
    TooLong,
    /// Long enough, but common, breached, a pattern, or made of the person's own names.
    #[error("this password is too easy to guess{reason}; choose another: {ADVICE}")]
    TooWeak { reason: String },
    #[error("hashing failed: {0}")]
    Hash(String),
}

fn check_length(password: &str) -> Result<(), PasswordError> {
    let got = password.chars().count();
    if got < MIN_LEN {
        Err(PasswordError::TooShort { got })
    } else if got > MAX_LEN {
        Err(PasswordError::TooLong)
    } else {
        Ok(())
    }
}

/// Checks a new password of the person known by `names` (user name, display name) against the
/// rules in the module documentation.
pub fn check_new(password: &str, names: &[&str]) -> Result<(), PasswordError> {
    check_length(password)?;
    let words = context_words(names);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let estimate = zxcvbn::zxcvbn(password, &words);
    if estimate.score() >= zxcvbn::Score::Three {
        return Ok(());
    }
    // zxcvbn says what makes it weak when it can (e.g. "This is a very common password."); it
    // has no words for a password built on the person's own names, so that is said here.
    let plain = fold_vietnamese(&password.to_lowercase());
    let names_only = &words[..words.len() - SERVICE_WORDS.len()];
    let reason = if let Some(w) = estimate.feedback().and_then(|f| f.warning()) {
        format!(" ({})", w.to_string().trim_end_matches('.').to_lowercase())
    } else if names_only
        .iter()
        .any(|w| plain.contains(&fold_vietnamese(w)))
    {
        " (it is built on your name or user name)".to_string()
    } else {
        String::new()
    };
    Err(PasswordError::TooWeak { reason })
}

/// The names themselves, each of their words, and both again without diacritics and spaces
/// (`Hoàng Thị Mai` also gives `hoangthimai`, `hoang`, `thi`, `mai`), then the service's words.
fn context_words(names: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |w: String| {
        if w.chars().count() >= 3 && !out.contains(&w) {
            out.push(w);
        }
    };
    for name in names {
        let lower = name.trim().to_lowercase();
        let folded = fold_vietnamese(&lower);
        add(lower.split_whitespace().collect());
        add(folded.split_whitespace().collect());
        for word in lower.split(|c: char| !c.is_alphanumeric()) {
            add(word.to_string());
            add(fold_vietnamese(word));
        }
    }
    // Last and always all of them: `check_new` tells the names from these by position.
    out.extend(SERVICE_WORDS.iter().map(|w| w.to_string()));
    out
}

/// Lower-case Vietnamese letters without their diacritics, as people type them in passwords.
fn fold_vietnamese(s: &str) -> String {
    const GROUPS: [(&str, char); 7] = [
        ("àáảãạăằắẳẵặâầấẩẫậ", 'a'),
        ("èéẻẽẹêềếểễệ", 'e'),
        ("ìíỉĩị", 'i'),
        ("òóỏõọôồốổỗộơờớởỡợ", 'o'),
        ("ùúủũụưừứửữự", 'u'),
        ("ỳýỷỹỵ", 'y'),
        ("đ", 'd'),
    ];
    s.chars()
        .map(|c| {
            GROUPS
                .iter()
                .find(|(marked, _)| marked.contains(c))
                .map_or(c, |(_, plain)| *plain)
        })
        .collect()
}

/// Checks a new password (see [`check_new`]) and hashes it.
pub fn hash_new(password: &str, names: &[&str]) -> Result<String, PasswordError> {
    check_new(password, names)?;
    hash(password)
}

/// Hashes a password that has already met the rules (or is the server's own, like the demo's),
/// checking only its length.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check_length(password)?;
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// True when `password` matches the stored PHC string.
pub fn verify(password: &str, stored: &str) -> bool {
    if password.len() > MAX_LEN * 4 {
        return false;
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the time a real verification takes, so that an unknown user name answers as slowly as
/// a wrong password and cannot be told apart by timing.
pub fn verify_dummy(password: &str) {
    static DUMMY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if let Some(stored) = DUMMY.get_or_init(|| hash("not-a-real-password").ok()) {
        let _ = verify(password, stored);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse battery").expect("hashes");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("x", "not a phc string"));
        assert!(matches!(
            hash("short"),
            Err(PasswordError::TooShort { got: 5 })
        ));
    }

    #[test]
    fn common_short_and_personal_passwords_are_refused() {
        let mai = ["maiht", "Hoàng Thị Mai"];
        for short in ["aaaaaaaaaa", "password12", "Tr0ub4dor&3"] {
            assert!(
                matches!(check_new(short, &mai), Err(PasswordError::TooShort { .. })),
                "{short}"
            );
        }
        for weak in [
            "aaaaaaaaaaaa",
            "password1234",
            "qwertyuiop12",
            "123456789012",
            "iloveyou2026",
            "Password123!",
            "hoangthimai1990",
            "maiht-maiht-maiht",
            "telehealth-2026",
        ] {
            assert!(
                matches!(check_new(weak, &mai), Err(PasswordError::TooWeak { .. })),
                "{weak}"
            );
        }
        let message = check_new("password1234", &mai)
            .expect_err("refused")
            .to_string();
        assert!(message.contains("very common password"), "{message}");
        assert!(message.contains("unrelated words"), "{message}");
        let message = check_new("hoangthimai1990", &mai)
            .expect_err("refused")
            .to_string();
        assert!(message.contains("your name"), "{message}");
        assert!(matches!(
            check_new(&"x".repeat(MAX_LEN + 1), &mai),
            Err(PasswordError::TooLong)
        ));
    }

    #[test]
    fn passphrases_and_the_projects_own_passwords_pass() {
        for good in [
            "lantern orbit velvet ferry",
            "mua thu ha noi",
            "vuon rau sau nha nhieu gio",
            // The test harness's, and the shape of the schemathesis one (the demo's own is
            // checked in demo/seed.rs).
            "correct horse battery staple",
            "schemathesis-1234-5678",
        ] {
            assert!(
                check_new(good, &["root", "Test root"]).is_ok(),
                "{good}: {:?}",
                check_new(good, &["root", "Test root"])
            );
        }
    }

    #[test]
    fn names_fold_to_what_people_type() {
        assert_eq!(fold_vietnamese("hoàng thị mai đức"), "hoang thi mai duc");
        let words = context_words(&["Hoàng Thị Mai"]);
        assert!(words.contains(&"hoangthimai".to_string()), "{words:?}");
        assert!(words.contains(&"hoàngthịmai".to_string()), "{words:?}");
        assert!(words.contains(&"hoang".to_string()), "{words:?}");
    }
}
