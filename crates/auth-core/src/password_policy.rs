//! Which new passwords to accept: [`PasswordPolicy`], after NIST SP 800-63B rev. 4.

use std::borrow::Cow;

use icu_normalizer::ComposingNormalizerBorrowed;

/// The most commonly used passwords, lowercase. See [`PasswordPolicy`] for where they come
/// from.
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "password1234",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "pa$$word",
    "password!",
    "12345678",
    "123456789",
    "1234567890",
    "0123456789",
    "123123123",
    "12341234",
    "11223344",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1qaz2wsx",
    "1qazxsw2",
    "zaq12wsx",
    "qwertyui",
    "qwertyuiop",
    "qwerty123",
    "qwerty1234",
    "qwerty12",
    "qwertyuiop123",
    "asdfghjk",
    "asdfghjkl",
    "zxcvbnm1",
    "zxcvbnm123",
    "asdf1234",
    "qwer1234",
    "abcd1234",
    "abc12345",
    "abcdefg1",
    "a1b2c3d4",
    "iloveyou",
    "iloveyou1",
    "iloveyou2",
    "sunshine",
    "sunshine1",
    "princess",
    "princess1",
    "football",
    "football1",
    "baseball",
    "baseball1",
    "basketball",
    "superman",
    "batman123",
    "starwars",
    "pokemon1",
    "liverpool",
    "liverpool1",
    "chelsea1",
    "arsenal1",
    "manchester",
    "trustno1",
    "letmein1",
    "letmein123",
    "welcome1",
    "welcome123",
    "welcome2024",
    "welcome2025",
    "welcome2026",
    "changeme",
    "changeme1",
    "changeme123",
    "admin123",
    "admin1234",
    "administrator",
    "computer",
    "computer1",
    "internet",
    "michelle",
    "jennifer",
    "jordan23",
    "mustang1",
    "whatever",
    "whatever1",
    "shadow12",
    "master12",
    "monkey12",
    "dragon12",
    "charlie1",
    "freedom1",
    "corvette",
    "mercedes",
    "samsung1",
    "google123",
    "facebook",
    "linkedin",
    "chocolate",
    "butterfly",
    "elephant",
    "nicole12",
    "daniel12",
    "michael1",
    "jessica1",
    "ashley12",
    "matthew1",
    "anthony1",
    "blink182",
    "1234qwer",
    "q1w2e3r4",
    "q1w2e3r4t5",
    "qazwsxedc",
    "qweasdzxc",
    "1q2w3e4r5t6y",
    "987654321",
    "88888888",
    "00000000",
    "11111111",
    "12121212",
    "123qweasd",
    "qwe123qwe",
    "asd123456",
    "a123456789",
    "aa123456",
    "abc123456",
    "123456abc",
    "123456789a",
    "1234567890a",
    "qwerty123456",
    "password2024",
    "password2025",
    "password2026",
    "summer2024",
    "summer2025",
    "winter2024",
    "winter2025",
    "spring2025",
    "autumn2025",
    "letmeinplease",
    "secret123",
    "secret1234",
    "access14",
    "default1",
    "default123",
    "guest123",
    "test1234",
    "testtest",
    "test12345",
    "hello123",
    "hello1234",
    "helloworld",
    "lovely12",
    "loveyou1",
    "myspace1",
    "ihateyou",
    "nothing1",
    "anything",
    "something",
    "everything",
    "fuckyou1",
    "password01",
    "passwordpassword",
    "correcthorsebatterystaple",
    "correct horse battery staple",
];

/// Why [`PasswordPolicy::check`] refused a password. `Display` is a sentence to show to the
/// person choosing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WeakPassword {
    /// Fewer characters than the policy's minimum.
    #[error(
        "choose a password of at least {min} characters (this one has {actual}); a few words with spaces between them are easy to remember"
    )]
    TooShort {
        /// The policy's minimum.
        min: usize,
        /// The password's length in characters.
        actual: usize,
    },
    /// More characters than the policy's maximum.
    #[error("choose a password of at most {max} characters (this one has {actual})")]
    TooLong {
        /// The policy's maximum.
        max: usize,
        /// The password's length in characters.
        actual: usize,
    },
    /// On the list of most commonly used passwords.
    #[error(
        "this is one of the most commonly used passwords, which attackers try first: choose another"
    )]
    Common,
    /// One short unit repeated, such as eight spaces or "abababab".
    #[error(
        "this password repeats the same characters over and over, which attackers try first: choose another"
    )]
    Repetitive,
    /// A run of consecutive characters, such as "12345678" or "abcdefgh".
    #[error(
        "this password is a run of consecutive characters (like 12345678 or abcdefgh), which attackers try first: choose another"
    )]
    Sequential,
    /// Contains the user's name.
    #[error("this password contains your user name: choose one that does not")]
    ContainsUserName,
}

/// The NFKC form of `password` (800-63B §3.1.1.2 asks for it before hashing): hash and verify
/// this, so that a password typed with composed or decomposed characters verifies either way.
///
/// ```
/// // "é" as one code point and as "e" plus a combining accent normalise alike.
/// assert_eq!(auth_core::normalize_password("caf\u{e9}"), auth_core::normalize_password("cafe\u{301}"));
/// ```
pub fn normalize_password(password: &str) -> Cow<'_, str> {
    ComposingNormalizerBorrowed::new_nfkc().normalize(password)
}

/// Which passwords to accept when one is chosen, after NIST SP 800-63B revision 4 (§3.1.1.2).
///
/// [`PasswordPolicy::check`] refuses a new password with a [`WeakPassword`] whose `Display`
/// is a sentence to show the user. What it checks, and what it deliberately does not:
///
/// - **Length in characters** (Unicode code points, after normalisation): at least 15 by
///   default, the minimum 800-63B sets when the password is the only factor
///   ([`PasswordPolicy::single_factor`]); 8 when it is one of two factors
///   ([`PasswordPolicy::multi_factor`]). At most 128 (800-63B asks for at least 64).
/// - **Every character is allowed**, spaces and any Unicode included; **no composition rules**
///   (no "one digit, one symbol"), which 800-63B forbids.
/// - **A blocklist**: a short list of the most commonly used passwords, compared without
///   regard to case, plus context-specific checks: a password that is one short unit repeated
///   (`"        "`, `"abababab"`, `"123123123"`), a run of consecutive characters
///   (`"12345678"`, `"abcdefghijklmnop"`, `"98765432"`), or one containing the user's own
///   name ([`PasswordPolicy::check_for_user`]).
///
/// The list is written for this crate, not copied from another project: about 150 passwords
/// that top the public frequency statistics of breached-password corpora (the kind of data
/// the UK NCSC and Have I Been Pwned publish). It catches the obvious; it is not a breached-
/// password corpus. To check against one (for example a k-anonymity range query to the Pwned
/// Passwords API, which 800-63B's "passwords obtained from previous breach corpuses" points
/// at), add your own check after this one.
///
/// **Normalisation**: 800-63B says passwords *should* be normalised with Unicode NFKC before
/// hashing, so that the same password typed on two keyboards verifies. [`normalize_password`]
/// does it; hash and verify its output, and pass it to [`PasswordPolicy::check`] (which also
/// normalises, so the length is counted as it will be stored). [`Passwords`](crate::Passwords)
/// itself hashes the bytes it is given, unchanged, so that hashes made before are still
/// verified.
///
/// ```
/// use auth_core::{PasswordPolicy, WeakPassword};
///
/// let policy = PasswordPolicy::default();
/// assert!(matches!(policy.check("password"), Err(WeakPassword::TooShort { min: 15, .. })));
/// assert!(policy.check("purple elephants dance slowly").is_ok());
///
/// let policy = PasswordPolicy::multi_factor();
/// let refused = policy.check("12345678").unwrap_err();
/// assert_eq!(refused, WeakPassword::Common);
/// println!("{refused}"); // a sentence for the sign-up page
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    min_chars: usize,
    max_chars: usize,
}

impl Default for PasswordPolicy {
    /// [`PasswordPolicy::single_factor`]: a password is usually the only factor.
    fn default() -> Self {
        Self::single_factor()
    }
}

impl PasswordPolicy {
    /// The longest password accepted by default, in characters (800-63B: at least 64).
    pub const DEFAULT_MAX_CHARS: usize = 128;

    /// For passwords that are the only authentication factor: at least 15 characters.
    pub fn single_factor() -> Self {
        Self {
            min_chars: 15,
            max_chars: Self::DEFAULT_MAX_CHARS,
        }
    }

    /// For passwords that are one factor of two: at least 8 characters.
    pub fn multi_factor() -> Self {
        Self {
            min_chars: 8,
            max_chars: Self::DEFAULT_MAX_CHARS,
        }
    }

    /// Sets the minimum length in characters; values under 8, which 800-63B never allows,
    /// are raised to 8.
    pub fn min_chars(mut self, min: usize) -> Self {
        self.min_chars = min.max(8);
        self
    }

    /// Sets the maximum length in characters; values under 64, which 800-63B never allows,
    /// are raised to 64. Keep it within [`Passwords`](crate::Passwords)' byte limit
    /// (four bytes per character at most).
    pub fn max_chars(mut self, max: usize) -> Self {
        self.max_chars = max.max(64);
        self
    }

    /// The minimum length in characters, for the form's hint.
    pub fn min(&self) -> usize {
        self.min_chars
    }

    /// Accepts `password` as a new password, or says why not.
    pub fn check(&self, password: &str) -> Result<(), WeakPassword> {
        self.check_for_user(password, "")
    }

    /// [`check`](Self::check), also refusing a password that contains `user_name` (when it
    /// has at least 3 characters), compared without regard to case.
    pub fn check_for_user(&self, password: &str, user_name: &str) -> Result<(), WeakPassword> {
        let password = normalize_password(password);
        let actual = password.chars().count();
        if actual < self.min_chars {
            return Err(WeakPassword::TooShort {
                min: self.min_chars,
                actual,
            });
        }
        if actual > self.max_chars {
            return Err(WeakPassword::TooLong {
                max: self.max_chars,
                actual,
            });
        }
        let lower = password.to_lowercase();
        if COMMON.contains(&lower.as_str()) {
            return Err(WeakPassword::Common);
        }
        let chars: Vec<char> = lower.chars().collect();
        if is_repetitive(&chars) {
            return Err(WeakPassword::Repetitive);
        }
        if is_sequential(&chars) {
            return Err(WeakPassword::Sequential);
        }
        let user = normalize_password(user_name).to_lowercase();
        if user.chars().count() >= 3 && lower.contains(&user) {
            return Err(WeakPassword::ContainsUserName);
        }
        Ok(())
    }
}

/// One unit of at most 4 characters, repeated.
fn is_repetitive(chars: &[char]) -> bool {
    (1..=4).any(|unit| {
        chars.len() > unit
            && chars.len().is_multiple_of(unit)
            && chars
                .get(..unit)
                .is_some_and(|first| chars.chunks(unit).all(|chunk| chunk == first))
    })
}

/// Each character one code point above (or each below) the previous one.
fn is_sequential(chars: &[char]) -> bool {
    let steps: Vec<i64> = chars
        .iter()
        .zip(chars.iter().skip(1))
        .map(|(before, after)| i64::from(u32::from(*after)) - i64::from(u32::from(*before)))
        .collect();
    !steps.is_empty() && (steps.iter().all(|&s| s == 1) || steps.iter().all(|&s| s == -1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_examples_are_refused_with_a_reason() {
        let policy = PasswordPolicy::multi_factor();
        assert_eq!(policy.check("password"), Err(WeakPassword::Common));
        assert_eq!(policy.check("PassWord"), Err(WeakPassword::Common));
        assert_eq!(policy.check("12345678"), Err(WeakPassword::Common));
        assert_eq!(policy.check("        "), Err(WeakPassword::Repetitive));
        assert_eq!(policy.check("23456789"), Err(WeakPassword::Sequential));
        assert_eq!(policy.check("zyxwvuts"), Err(WeakPassword::Sequential));
        assert_eq!(policy.check("abababab"), Err(WeakPassword::Repetitive));
        let reason = policy.check("password").unwrap_err().to_string();
        assert!(reason.contains("most commonly used"), "{reason}");

        // Single factor: all three are too short, and the reason says the minimum.
        let policy = PasswordPolicy::default();
        for short in ["password", "12345678", "        "] {
            let refused = policy.check(short).unwrap_err();
            assert_eq!(refused, WeakPassword::TooShort { min: 15, actual: 8 });
            assert!(refused.to_string().contains("at least 15 characters"));
        }
        // Fifteen spaces are long enough but still refused.
        assert_eq!(policy.check(&" ".repeat(15)), Err(WeakPassword::Repetitive));
    }

    #[test]
    fn passphrases_spaces_and_unicode_are_accepted() {
        let policy = PasswordPolicy::default();
        assert_eq!(policy.check("correct horse staple gun"), Ok(()));
        assert_eq!(policy.check("  leading and trailing  "), Ok(()));
        assert_eq!(policy.check("Zoë 😀 mag Käsekuchen"), Ok(()));
        // No composition rules: all lowercase letters is fine.
        assert_eq!(policy.check("purple elephants dance"), Ok(()));
        // 128 characters accepted, 129 not.
        let long: String = "tortoise ".chars().cycle().take(128).collect();
        assert_eq!(policy.check(&long), Ok(()));
        let longer: String = "tortoise ".chars().cycle().take(129).collect();
        assert_eq!(
            policy.check(&longer),
            Err(WeakPassword::TooLong {
                max: 128,
                actual: 129
            })
        );
    }

    #[test]
    fn length_counts_code_points_after_nfkc() {
        let policy = PasswordPolicy::multi_factor();
        // Seven composed characters typed decomposed are still seven characters.
        let decomposed = "e\u{301}".repeat(3) + "rstu";
        assert_eq!(
            policy.check(&decomposed),
            Err(WeakPassword::TooShort { min: 8, actual: 7 })
        );
        // Full-width digits normalise to ASCII ones and hit the list.
        assert_eq!(policy.check("１２３４５６７８"), Err(WeakPassword::Common));
    }

    #[test]
    fn the_user_name_is_refused_inside_the_password() {
        let policy = PasswordPolicy::multi_factor();
        assert_eq!(
            policy.check_for_user("Alice-rules-2026", "alice"),
            Err(WeakPassword::ContainsUserName)
        );
        assert_eq!(policy.check_for_user("bob is my uncle", "al"), Ok(()));
    }

    #[test]
    fn limits_never_go_below_the_standard() {
        let policy = PasswordPolicy::multi_factor().min_chars(4).max_chars(10);
        assert_eq!(policy.min(), 8);
        assert_eq!(policy.max_chars, 64);
    }

    #[test]
    fn the_list_is_lowercase_and_free_of_duplicates() {
        let mut seen = std::collections::HashSet::new();
        for word in COMMON {
            assert_eq!(*word, word.to_lowercase());
            assert!(seen.insert(word), "{word} twice");
        }
    }
}
