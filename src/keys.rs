//! The annotation keys the policy reads, and how a raw annotation value becomes an explicit
//! value of the right type (SPEC §2–3).

/// Every input key starts with this prefix.
pub const PREFIX: &str = "cwii.dev/";
/// Output marker: sorted, comma-joined abbreviations of the injected providers.
pub const INJECTED_MARKER: &str = "cwii.dev/injected";

/// The type of a key decides when a raw value counts as explicit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `true` / `false`, case-insensitive.
    Bool,
    /// An integer number of seconds.
    Seconds,
    /// Any string that is non-empty after trimming.
    Text,
    /// Container names separated by `,` or `;`; explicit when at least one name is left.
    Names,
    /// One of a fixed set of words (case-insensitive): `(spelling, canonical word)` pairs, so
    /// that another tool's spellings can mean the same word.
    Choice(&'static [(&'static str, &'static str)]),
}

/// One key of a provider, named by its suffix: `cwii.dev/<p>-<suffix>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDef {
    pub suffix: &'static str,
    pub kind: KeyKind,
}

impl KeyDef {
    pub const fn new(suffix: &'static str, kind: KeyKind) -> Self {
        Self { suffix, kind }
    }
}

/// Suffixes of the keys every provider shares.
pub mod shared {
    pub const INJECT: &str = "inject";
    pub const AUDIENCE: &str = "audience";
    pub const TOKEN_EXPIRATION: &str = "token-expiration";
    pub const VERIFY: &str = "verify";
    pub const VERIFY_ENFORCE: &str = "verify-enforce";
    pub const VERIFY_IMAGE: &str = "verify-image";
    pub const SKIP_CONTAINERS: &str = "skip-containers";
}

/// The keys every provider has, in the order they are reported.
pub const SHARED_KEYS: &[KeyDef] = &[
    KeyDef::new(shared::INJECT, KeyKind::Bool),
    KeyDef::new(shared::AUDIENCE, KeyKind::Text),
    KeyDef::new(shared::TOKEN_EXPIRATION, KeyKind::Seconds),
    KeyDef::new(shared::VERIFY, KeyKind::Bool),
    KeyDef::new(shared::VERIFY_ENFORCE, KeyKind::Bool),
    KeyDef::new(shared::VERIFY_IMAGE, KeyKind::Text),
    KeyDef::new(shared::SKIP_CONTAINERS, KeyKind::Names),
];

/// A provider's key definitions: the shared ones first, then its own.
pub fn key_defs(own: &'static [KeyDef]) -> impl Iterator<Item = KeyDef> {
    SHARED_KEYS.iter().chain(own).copied()
}

/// A value that counted as explicit, already converted to its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue {
    Bool(bool),
    Seconds(i64),
    Text(String),
    Names(Vec<String>),
}

impl KeyValue {
    /// Short rendering for audit annotations and tests.
    pub fn render(&self) -> String {
        match self {
            KeyValue::Bool(b) => b.to_string(),
            KeyValue::Seconds(s) => s.to_string(),
            KeyValue::Text(t) => t.clone(),
            KeyValue::Names(n) => n.join(","),
        }
    }
}

/// Why a raw value was not explicit; used in the warning.
pub fn expected(kind: KeyKind) -> String {
    match kind {
        KeyKind::Bool => "expected true or false".into(),
        KeyKind::Seconds => "expected an integer number of seconds".into(),
        KeyKind::Text => "expected a non-empty value".into(),
        KeyKind::Names => "expected container names separated by ',' or ';'".into(),
        KeyKind::Choice(words) => format!("expected one of {}", canonical_words(words).join(", ")),
    }
}

/// A raw value that counts as explicit, still borrowed from it: the one place the rules
/// live, for [`parse_value`] and [`is_explicit`].
enum Explicit<'a> {
    Bool(bool),
    Seconds(i64),
    Text(&'a str),
    /// The trimmed list, holding at least one name.
    Names(&'a str),
    Word(&'static str),
}

fn explicit_form(kind: KeyKind, raw: &str) -> Option<Explicit<'_>> {
    let trimmed = raw.trim();
    match kind {
        KeyKind::Bool => {
            if trimmed.eq_ignore_ascii_case("true") {
                Some(Explicit::Bool(true))
            } else if trimmed.eq_ignore_ascii_case("false") {
                Some(Explicit::Bool(false))
            } else {
                None
            }
        }
        KeyKind::Seconds => trimmed.parse::<i64>().ok().map(Explicit::Seconds),
        KeyKind::Text => (!trimmed.is_empty()).then_some(Explicit::Text(trimmed)),
        KeyKind::Names => names(trimmed)
            .next()
            .is_some()
            .then_some(Explicit::Names(trimmed)),
        KeyKind::Choice(words) => words
            .iter()
            .find(|(spelling, _)| spelling.eq_ignore_ascii_case(trimmed))
            .map(|(_, word)| Explicit::Word(word)),
    }
}

/// The names of a `,`/`;`-separated list, trimmed, empty ones left out.
fn names(list: &str) -> impl Iterator<Item = &str> {
    list.split([',', ';'])
        .map(str::trim)
        .filter(|n| !n.is_empty())
}

/// Converts a raw annotation value; `None` means "not explicit": fall through to the next level.
pub fn parse_value(kind: KeyKind, raw: &str) -> Option<KeyValue> {
    Some(match explicit_form(kind, raw)? {
        Explicit::Bool(b) => KeyValue::Bool(b),
        Explicit::Seconds(s) => KeyValue::Seconds(s),
        Explicit::Text(text) => KeyValue::Text(text.to_string()),
        Explicit::Names(list) => KeyValue::Names(names(list).map(str::to_string).collect()),
        Explicit::Word(word) => KeyValue::Text(word.to_string()),
    })
}

/// Whether [`parse_value`] would give a value, without building it.
pub fn is_explicit(kind: KeyKind, raw: &str) -> bool {
    explicit_form(kind, raw).is_some()
}

/// The distinct canonical words of a choice, in order.
pub fn canonical_words(words: &[(&'static str, &'static str)]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (_, word) in words {
        if !out.contains(word) {
            out.push(word);
        }
    }
    out
}

/// A strict integer: an optional sign and ASCII digits, nothing else (how Go's
/// `strconv.ParseInt` reads, and so the webhooks written in Go).
pub fn strict_int(raw: &str) -> Option<i64> {
    let digits = raw.strip_prefix(['+', '-']).unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.strip_prefix('+').unwrap_or(raw).parse().ok()
}

/// `cwii.dev/<provider>-<suffix>`.
pub fn full_key(provider: &str, suffix: &str) -> String {
    format!("{PREFIX}{provider}-{suffix}")
}

/// Shortens an untrusted value for a one-line warning, escaping control characters.
pub fn quote_for_message(raw: &str) -> String {
    const MAX_CHARS: usize = 48;
    let mut shown: String = raw.chars().take(MAX_CHARS).collect();
    if raw.chars().nth(MAX_CHARS).is_some() {
        shown.push('…');
    }
    format!("{shown:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bool_is_case_insensitive_and_strict() {
        assert_eq!(
            parse_value(KeyKind::Bool, "TRUE"),
            Some(KeyValue::Bool(true))
        );
        assert_eq!(
            parse_value(KeyKind::Bool, " False "),
            Some(KeyValue::Bool(false))
        );
        assert_eq!(parse_value(KeyKind::Bool, "yes"), None);
        assert_eq!(parse_value(KeyKind::Bool, "1"), None);
        assert_eq!(parse_value(KeyKind::Bool, ""), None);
    }

    #[test]
    fn seconds_must_parse() {
        assert_eq!(
            parse_value(KeyKind::Seconds, "7200"),
            Some(KeyValue::Seconds(7200))
        );
        assert_eq!(
            parse_value(KeyKind::Seconds, "-5"),
            Some(KeyValue::Seconds(-5))
        );
        assert_eq!(parse_value(KeyKind::Seconds, "1h"), None);
        assert_eq!(
            parse_value(KeyKind::Seconds, "99999999999999999999999"),
            None
        );
    }

    #[test]
    fn text_is_trimmed_and_non_empty() {
        assert_eq!(
            parse_value(KeyKind::Text, "  abc "),
            Some(KeyValue::Text("abc".into()))
        );
        assert_eq!(parse_value(KeyKind::Text, " \n\t "), None);
    }

    #[test]
    fn names_split_on_comma_and_semicolon() {
        assert_eq!(
            parse_value(KeyKind::Names, "a, b;c;;"),
            Some(KeyValue::Names(vec!["a".into(), "b".into(), "c".into()]))
        );
        assert_eq!(parse_value(KeyKind::Names, " ; , "), None);
    }

    #[test]
    fn choice_normalises_case() {
        let kind = KeyKind::Choice(&[
            ("downward-api", "downward-api"),
            ("init-container", "init-container"),
            ("initContainer", "init-container"),
        ]);
        assert_eq!(
            parse_value(kind, "Init-Container"),
            Some(KeyValue::Text("init-container".into()))
        );
        assert_eq!(
            parse_value(kind, "initContainer"),
            Some(KeyValue::Text("init-container".into()))
        );
        assert_eq!(parse_value(kind, "carrier-pigeon"), None);
        assert_eq!(
            expected(kind),
            "expected one of downward-api, init-container"
        );
    }

    #[test]
    fn is_explicit_agrees_with_parse_value() {
        let choice = KeyKind::Choice(&[("a-b", "a-b"), ("aB", "a-b"), ("c", "c")]);
        let kinds = [
            KeyKind::Bool,
            KeyKind::Seconds,
            KeyKind::Text,
            KeyKind::Names,
            choice,
        ];
        let raws = [
            "",
            " ",
            "true",
            " TRUE ",
            "False",
            "yes",
            "1",
            "-5",
            "+7",
            "1h",
            "9".repeat(30).leak(),
            "a",
            " ,; ",
            "a, b;c",
            ";x",
            "A-B",
            "ab",
            "aB",
            " c ",
            "\u{a0}",
            "\t\n",
            "é",
        ];
        for kind in kinds {
            for raw in raws {
                assert_eq!(
                    is_explicit(kind, raw),
                    parse_value(kind, raw).is_some(),
                    "{kind:?} {raw:?}"
                );
            }
        }
    }

    #[test]
    fn quoting_bounds_and_escapes() {
        let long = "x".repeat(10_000);
        let q = quote_for_message(&long);
        assert!(q.chars().count() < 60, "{q}");
        assert_eq!(quote_for_message("a\nb"), "\"a\\nb\"");
    }
}
