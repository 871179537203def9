//! The kernel command line: `workload=NAME key=value ...`.
//!
//! The harness passes it with QEMU's `-append`; PVH hands it to the kernel
//! in `hvm_start_info`. Each workload declares its parameters as a slice of
//! [`ParamSpec`]; [`Params::parse`] checks a command line against it, so an
//! unknown key, a malformed token or a bad value is reported by name before
//! the workload starts. A few keys configure the kernel rather than the
//! workload ([`KERNEL_KEYS`]); every workload accepts them.

use core::fmt;

/// What values a parameter accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An unsigned integer in `min..=max`.
    U64 { min: u64, max: u64 },
    /// `on`/`off` (also `1`/`0`, `true`/`false`, `yes`/`no`).
    Bool,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A name: 1 to 64 of ASCII letters, digits, `-`, `_` and `.`.
    Name,
}

/// One parameter a workload accepts.
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    pub key: &'static str,
    pub kind: Kind,
    /// The value used when the command line does not give one; must itself
    /// be valid for `kind`.
    pub default: &'static str,
    pub help: &'static str,
}

/// Keys every workload accepts, because they configure the kernel, not the
/// workload; read with [`kernel_flag`].
pub const KERNEL_KEYS: &[ParamSpec] = &[
    ParamSpec {
        key: "model",
        kind: Kind::Bool,
        default: "off",
        help: "give the memory-system model its hints (set by the harness under tcg-model; \
               lab_core::model_hint)",
    },
    // The variant's name, for the report's `begin` line. It comes on the
    // command line, not from the build, so that a kernel's build depends on
    // its features alone: variants (and the gate self-test's renamed
    // copies) with the same features share one build instead of
    // recompiling the kernel whenever the name changes.
    ParamSpec {
        key: "variant",
        kind: Kind::Name,
        default: "unnamed",
        help: "the variant's name, echoed in the report's begin line (set by the harness)",
    },
    ParamSpec {
        key: "chaos",
        kind: Kind::U64 {
            min: 0,
            max: u64::MAX,
        },
        default: "0",
        help: "chaos mode: seeded delays at the shootdown protocols' points (0: off; \
               lab_core::chaos)",
    },
];

/// The [`KERNEL_KEYS`] entry of `key`.
fn kernel_key(key: &str) -> &'static ParamSpec {
    KERNEL_KEYS
        .iter()
        .find(|p| p.key == key)
        .unwrap_or_else(|| panic!("'{key}' is not a kernel-wide key"))
}

/// The value kernel-wide `key` has on `line`, if given.
fn kernel_given<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    tokens(line)
        .flatten()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The raw value of kernel-wide `key` on `line`, else its default.
fn kernel_raw<'a>(line: &'a str, key: &str) -> &'a str {
    kernel_given(line, key).unwrap_or(kernel_key(key).default)
}

/// The value of the kernel-wide flag `key` (one of [`KERNEL_KEYS`]) on a
/// command line [`Params::parse`] accepted; its default when not given.
pub fn kernel_flag(line: &str, key: &str) -> bool {
    parse_bool(kernel_raw(line, key)).unwrap_or(false)
}

/// The value of the kernel-wide integer `key` (one of [`KERNEL_KEYS`]);
/// its default when not given, 0 when malformed (the kernel reads these
/// before it checks the line, and [`Params::parse`] then reports it).
pub fn kernel_u64(line: &str, key: &str) -> u64 {
    kernel_raw(line, key).parse().unwrap_or(0)
}

/// The kernel-wide name `key` (one of [`KERNEL_KEYS`]) if the line gives
/// one that [`Kind::Name`] accepts.
pub fn kernel_name<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let kind = kernel_key(key).kind;
    kernel_given(line, key).filter(|v| accepts(kind, v))
}

/// A command line that does not fit the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    /// A token that is not `key=value`.
    Malformed(&'a str),
    /// No `workload=` token.
    MissingWorkload,
    /// `workload=` names no workload the kernel knows.
    UnknownWorkload(&'a str),
    /// A key the workload does not take.
    UnknownKey { workload: &'a str, key: &'a str },
    /// The same key given twice.
    Duplicate(&'a str),
    /// A value outside what the key accepts.
    BadValue {
        key: &'a str,
        value: &'a str,
        expected: Kind,
    },
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::U64 { min, max } => write!(f, "an integer in {min}..={max}"),
            Kind::Bool => f.write_str("on or off"),
            Kind::Choice(words) => {
                f.write_str("one of ")?;
                for (i, w) in words.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(w)?;
                }
                Ok(())
            }
            Kind::Name => f.write_str("a name (1-64 of letters, digits, '-', '_', '.')"),
        }
    }
}

impl fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdlineError::Malformed(t) => {
                write!(f, "malformed argument '{t}' (expected key=value)")
            }
            CmdlineError::MissingWorkload => f.write_str("no workload=NAME on the command line"),
            CmdlineError::UnknownWorkload(w) => write!(f, "unknown workload '{w}'"),
            CmdlineError::UnknownKey { workload, key } => {
                write!(f, "unknown parameter '{key}' for workload '{workload}'")
            }
            CmdlineError::Duplicate(k) => write!(f, "parameter '{k}' given more than once"),
            CmdlineError::BadValue {
                key,
                value,
                expected,
            } => {
                write!(f, "bad value '{value}' for '{key}': expected {expected}")
            }
        }
    }
}

/// The `key=value` tokens of a command line, in order.
pub fn tokens(line: &str) -> impl Iterator<Item = Result<(&str, &str), CmdlineError<'_>>> {
    line.split_ascii_whitespace()
        .map(|token| match token.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key, value)),
            _ => Err(CmdlineError::Malformed(token)),
        })
}

/// The workload the command line names.
pub fn workload(line: &str) -> Result<&str, CmdlineError<'_>> {
    for token in tokens(line) {
        let (key, value) = token?;
        if key == "workload" {
            return Ok(value);
        }
    }
    Err(CmdlineError::MissingWorkload)
}

/// A command line checked against a workload's parameters.
#[derive(Clone, Copy, Debug)]
pub struct Params<'a> {
    line: &'a str,
    spec: &'static [ParamSpec],
}

impl<'a> Params<'a> {
    /// Checks every token of `line` against `spec` (the `workload=` token
    /// excepted) and returns the accessor for their values.
    pub fn parse(line: &'a str, spec: &'static [ParamSpec]) -> Result<Self, CmdlineError<'a>> {
        let workload = workload(line)?;
        for (i, token) in tokens(line).enumerate() {
            let (key, value) = token?;
            if tokens(line).take(i).any(|t| t.is_ok_and(|(k, _)| k == key)) {
                return Err(CmdlineError::Duplicate(key));
            }
            if key == "workload" {
                continue;
            }
            let Some(param) = spec.iter().chain(KERNEL_KEYS).find(|p| p.key == key) else {
                return Err(CmdlineError::UnknownKey { workload, key });
            };
            if !accepts(param.kind, value) {
                return Err(CmdlineError::BadValue {
                    key,
                    value,
                    expected: param.kind,
                });
            }
        }
        Ok(Params { line, spec })
    }

    /// The raw value of `key`: from the command line, else its default.
    ///
    /// Panics if `key` is not in the workload's spec: that is a bug in the
    /// workload, not bad input.
    pub fn raw(&self, key: &str) -> &'a str {
        let given = tokens(self.line)
            .flatten()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v);
        let param = self.spec.iter().find(|p| p.key == key);
        match (given, param) {
            (Some(value), Some(_)) => value,
            (None, Some(param)) => param.default,
            (_, None) => panic!("workload asked for undeclared parameter '{key}'"),
        }
    }

    pub fn u64(&self, key: &str) -> u64 {
        self.raw(key).parse().expect("validated by Params::parse")
    }

    pub fn flag(&self, key: &str) -> bool {
        parse_bool(self.raw(key)).expect("validated by Params::parse")
    }

    pub fn choice(&self, key: &str) -> &'a str {
        self.raw(key)
    }
}

/// `on`/`off` and the synonyms [`Kind::Bool`] accepts.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "on" | "1" | "true" | "yes" => Some(true),
        "off" | "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

fn accepts(kind: Kind, value: &str) -> bool {
    match kind {
        Kind::U64 { min, max } => value.parse::<u64>().is_ok_and(|v| (min..=max).contains(&v)),
        Kind::Bool => parse_bool(value).is_some(),
        Kind::Choice(words) => words.contains(&value),
        Kind::Name => {
            (1..=64).contains(&value.len())
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[ParamSpec] = &[
        ParamSpec {
            key: "loops",
            kind: Kind::U64 { min: 1, max: 100 },
            default: "10",
            help: "",
        },
        ParamSpec {
            key: "touch",
            kind: Kind::Bool,
            default: "on",
            help: "",
        },
        ParamSpec {
            key: "mode",
            kind: Kind::Choice(&["a", "b"]),
            default: "a",
            help: "",
        },
    ];

    #[test]
    fn values_and_defaults() {
        let p = Params::parse("workload=w loops=7 mode=b", SPEC).unwrap();
        assert_eq!(p.u64("loops"), 7);
        assert!(p.flag("touch"));
        assert_eq!(p.choice("mode"), "b");
    }

    #[test]
    fn names_what_is_wrong() {
        assert_eq!(workload("loops=1"), Err(CmdlineError::MissingWorkload));
        assert_eq!(
            Params::parse("workload=w bogus=1", SPEC).unwrap_err(),
            CmdlineError::UnknownKey {
                workload: "w",
                key: "bogus"
            }
        );
        assert_eq!(
            Params::parse("workload=w loops", SPEC).unwrap_err(),
            CmdlineError::Malformed("loops")
        );
        assert_eq!(
            Params::parse("workload=w =3", SPEC).unwrap_err(),
            CmdlineError::Malformed("=3")
        );
        assert!(matches!(
            Params::parse("workload=w loops=0", SPEC).unwrap_err(),
            CmdlineError::BadValue {
                key: "loops",
                value: "0",
                ..
            }
        ));
        assert!(matches!(
            Params::parse("workload=w loops=1x", SPEC).unwrap_err(),
            CmdlineError::BadValue { key: "loops", .. }
        ));
        assert_eq!(
            Params::parse("workload=w loops=1 loops=2", SPEC).unwrap_err(),
            CmdlineError::Duplicate("loops")
        );
        let err = Params::parse("workload=w mode=c", SPEC)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "bad value 'c' for 'mode': expected one of a, b");
    }

    #[test]
    fn kernel_keys_are_accepted_by_every_workload() {
        let line = "workload=w loops=2 model=on";
        let p = Params::parse(line, SPEC).unwrap();
        assert_eq!(p.u64("loops"), 2);
        assert!(kernel_flag(line, "model"));
        assert!(!kernel_flag("workload=w", "model"));
        assert!(matches!(
            Params::parse("workload=w model=maybe", SPEC).unwrap_err(),
            CmdlineError::BadValue { key: "model", .. }
        ));
    }

    #[test]
    fn chaos_seed_is_a_kernel_key() {
        let line = "workload=w chaos=18446744073709551615";
        assert!(Params::parse(line, SPEC).is_ok());
        assert_eq!(kernel_u64(line, "chaos"), u64::MAX);
        assert_eq!(kernel_u64("workload=w", "chaos"), 0, "off unless given");
        assert_eq!(kernel_u64("workload=w chaos=x", "chaos"), 0);
        assert!(matches!(
            Params::parse("workload=w chaos=-1", SPEC).unwrap_err(),
            CmdlineError::BadValue { key: "chaos", .. }
        ));
    }

    #[test]
    fn defaults_are_valid() {
        for p in KERNEL_KEYS {
            assert!(accepts(p.kind, p.default), "{}", p.key);
        }
        for p in SPEC {
            assert!(accepts(p.kind, p.default), "{}", p.key);
        }
    }
}
