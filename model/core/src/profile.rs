//! Cost profiles: what each modeled event costs on one real machine.
//!
//! A profile is a TOML file (model/profiles/*.toml) naming a machine, its
//! clock rate, its socket size, the cycle cost of every event the model
//! charges, and the shape of its data TLBs. Every figure carries a
//! `source`: where it came from (a manual, a paper, a measurement, or an
//! explicit assumption); an empty source is refused, so no number enters
//! the model unexplained.
//!
//! ```toml
//! name = "skylake-sp"            # [a-z0-9._-]: it becomes part of metric names
//! machine = "Intel Xeon ..."
//! ghz = 2.5                      # > 0; converts cycles to ns
//! ghz_source = "..."
//! cpus_per_socket = 28           # > 0; vCPU i is on socket i / cpus_per_socket
//! [costs.instruction]            # each cost is { cycles = <u64>, source = "<text>" }
//! cycles = 1
//! source = "assumption: ..."
//! # ... costs.c2c_same_socket, c2c_cross_socket, page_walk, invlpg,
//! # full_flush, ipi_delivery, interrupt_entry_exit, eoi: all required.
//! [tlb]
//! entries_4k = 1536              # > 0, a multiple of ways_4k
//! ways_4k = 12                   # > 0
//! entries_2m = 1536
//! ways_2m = 12
//! source = "..."
//! ```
//!
//! Unknown fields anywhere are an error (a typo must not silently leave a
//! cost at a default: there are no defaults). Every error names the file
//! (the `origin` given to [`Profile::from_str`]) and the field.

use serde::Deserialize;
use std::fmt;
use std::path::Path;

/// One cost: cycles charged per event, and where the figure comes from.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    pub cycles: u64,
    pub source: String,
}

/// The cost of every event the model charges.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Costs {
    /// Per instruction executed outside a spin-wait loop.
    pub instruction: Cost,
    /// A line transfer from another core's cache on the same socket.
    pub c2c_same_socket: Cost,
    /// A line transfer from a core on another socket.
    pub c2c_cross_socket: Cost,
    /// A TLB miss's page walk.
    pub page_walk: Cost,
    /// One INVLPG.
    pub invlpg: Cost,
    /// A full TLB flush (MOV to CR3, or a CR4.PGE toggle).
    pub full_flush: Cost,
    /// From the sender's ICR write to the handler's first instruction.
    pub ipi_delivery: Cost,
    /// Interrupt entry plus IRET.
    pub interrupt_entry_exit: Cost,
    /// The handler's end-of-interrupt write.
    pub eoi: Cost,
}

/// The data TLB shape: one set-associative array per page size.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlbShape {
    pub entries_4k: usize,
    pub ways_4k: usize,
    pub entries_2m: usize,
    pub ways_2m: usize,
    pub source: String,
}

/// A cost profile (see the module documentation for the file format).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub machine: String,
    pub ghz: f64,
    pub ghz_source: String,
    pub cpus_per_socket: usize,
    pub costs: Costs,
    pub tlb: TlbShape,
}

/// Why a profile was refused: the file, the field, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileError {
    /// The file (or whatever origin the caller named).
    pub origin: String,
    /// The offending field, dotted (`costs.invlpg.source`); `-` when the
    /// TOML itself could not be parsed and the parser named no field.
    pub field: String,
    pub msg: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cost profile {}: field '{}': {}",
            self.origin, self.field, self.msg
        )
    }
}

impl std::error::Error for ProfileError {}

impl Profile {
    /// Reads and checks the profile at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Profile, ProfileError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
            origin: origin.clone(),
            field: "-".into(),
            msg: format!("cannot read: {e}"),
        })?;
        Profile::from_str(&text, &origin)
    }

    /// Parses and checks a profile; `origin` names it in errors.
    #[allow(clippy::should_implement_trait)] // it takes an origin too
    pub fn from_str(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let profile: Profile = toml::from_str(text).map_err(|e| ProfileError {
            origin: origin.into(),
            field: "-".into(),
            // The parser's message names the unknown or missing field and
            // shows the line; keep it on one line for logs.
            msg: e.to_string().replace('\n', " "),
        })?;
        profile.check().map_err(|(field, msg)| ProfileError {
            origin: origin.into(),
            field,
            msg,
        })?;
        Ok(profile)
    }

    /// The socket vCPU `cpu` is on.
    pub fn socket_of(&self, cpu: usize) -> usize {
        cpu / self.cpus_per_socket
    }

    /// Every cost, with its dotted field name, in file order.
    pub fn costs(&self) -> [(&'static str, &Cost); 9] {
        let c = &self.costs;
        [
            ("instruction", &c.instruction),
            ("c2c_same_socket", &c.c2c_same_socket),
            ("c2c_cross_socket", &c.c2c_cross_socket),
            ("page_walk", &c.page_walk),
            ("invlpg", &c.invlpg),
            ("full_flush", &c.full_flush),
            ("ipi_delivery", &c.ipi_delivery),
            ("interrupt_entry_exit", &c.interrupt_entry_exit),
            ("eoi", &c.eoi),
        ]
    }

    /// The semantic checks serde cannot express: `(field, message)`.
    fn check(&self) -> Result<(), (String, String)> {
        let bad = |field: &str, msg: &str| Err((field.to_string(), msg.to_string()));
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            return bad(
                "name",
                "must be non-empty [a-z0-9._-] (it becomes part of metric names)",
            );
        }
        if self.machine.trim().is_empty() {
            return bad("machine", "is empty");
        }
        if !(self.ghz.is_finite() && self.ghz > 0.0) {
            return bad("ghz", "must be a positive number");
        }
        if self.ghz_source.trim().is_empty() {
            return bad(
                "ghz_source",
                "is empty: say where the clock rate comes from",
            );
        }
        if self.cpus_per_socket == 0 {
            return bad("cpus_per_socket", "must be at least 1");
        }
        for (name, cost) in self.costs() {
            if cost.source.trim().is_empty() {
                return Err((
                    format!("costs.{name}.source"),
                    "is empty: say where the figure comes from".into(),
                ));
            }
        }
        let t = &self.tlb;
        for (size, entries, ways) in [
            ("4k", t.entries_4k, t.ways_4k),
            ("2m", t.entries_2m, t.ways_2m),
        ] {
            if ways == 0 {
                return Err((format!("tlb.ways_{size}"), "must be at least 1".into()));
            }
            if entries == 0 || entries % ways != 0 {
                return Err((
                    format!("tlb.entries_{size}"),
                    format!("{entries} is not a positive multiple of tlb.ways_{size} ({ways})"),
                ));
            }
        }
        if t.source.trim().is_empty() {
            return bad("tlb.source", "is empty: say where the TLB shape comes from");
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A complete, valid profile with easily told-apart costs, small TLBs
    /// (4 sets of 2 ways for 4 KiB pages) and 2 CPUs per socket.
    pub(crate) const FIXTURE: &str = r#"
name = "test-box"
machine = "a fixture"
ghz = 2.0
ghz_source = "fixture"
cpus_per_socket = 2
[costs.instruction]
cycles = 1
source = "fixture"
[costs.c2c_same_socket]
cycles = 50
source = "fixture"
[costs.c2c_cross_socket]
cycles = 200
source = "fixture"
[costs.page_walk]
cycles = 30
source = "fixture"
[costs.invlpg]
cycles = 100
source = "fixture"
[costs.full_flush]
cycles = 300
source = "fixture"
[costs.ipi_delivery]
cycles = 1000
source = "fixture"
[costs.interrupt_entry_exit]
cycles = 400
source = "fixture"
[costs.eoi]
cycles = 40
source = "fixture"
[tlb]
entries_4k = 8
ways_4k = 2
entries_2m = 4
ways_2m = 4
source = "fixture"
"#;

    pub(crate) fn fixture() -> Profile {
        Profile::from_str(FIXTURE, "fixture.toml").unwrap()
    }

    fn err(text: &str) -> ProfileError {
        Profile::from_str(text, "bad.toml").unwrap_err()
    }

    #[test]
    fn fixture_parses() {
        let p = fixture();
        assert_eq!(p.name, "test-box");
        assert_eq!(p.costs.eoi.cycles, 40);
        assert_eq!(p.tlb.entries_4k, 8);
        assert_eq!(p.socket_of(3), 1);
    }

    #[test]
    fn empty_source_is_refused() {
        let e = err(&FIXTURE.replacen(
            "cycles = 100\nsource = \"fixture\"",
            "cycles = 100\nsource = \"\"",
            1,
        ));
        assert_eq!(e.field, "costs.invlpg.source");
        assert_eq!(e.origin, "bad.toml");
        assert!(e.to_string().contains("bad.toml"), "{e}");
        assert!(e.to_string().contains("costs.invlpg.source"), "{e}");
    }

    #[test]
    fn zero_ways_is_refused() {
        let e = err(&FIXTURE.replace("ways_4k = 2", "ways_4k = 0"));
        assert_eq!(e.field, "tlb.ways_4k");
    }

    #[test]
    fn entries_must_be_a_multiple_of_ways() {
        let e = err(&FIXTURE.replace("entries_2m = 4", "entries_2m = 6"));
        assert_eq!(e.field, "tlb.entries_2m");
        assert!(e.msg.contains('6'), "{e}");
    }

    #[test]
    fn unknown_and_missing_fields_are_refused() {
        let e = err(&FIXTURE.replace("ghz = 2.0", "ghz = 2.0\nturbo = true"));
        assert!(e.msg.contains("turbo"), "{e}");
        let e = err(&FIXTURE.replace("[costs.eoi]\ncycles = 40\nsource = \"fixture\"", ""));
        assert!(e.msg.contains("eoi"), "{e}");
        let e = err(&FIXTURE.replace("cycles = 1\n", "cycles = 1\ncylces = 2\n"));
        assert!(e.msg.contains("cylces"), "{e}");
    }

    #[test]
    fn bad_name_and_numbers_are_refused() {
        assert_eq!(err(&FIXTURE.replace("test-box", "Test Box")).field, "name");
        assert_eq!(err(&FIXTURE.replace("ghz = 2.0", "ghz = 0.0")).field, "ghz");
        assert_eq!(
            err(&FIXTURE.replace("cpus_per_socket = 2", "cpus_per_socket = 0")).field,
            "cpus_per_socket"
        );
    }

    #[test]
    fn load_names_the_file() {
        let e = Profile::load("/nonexistent/x.toml").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.toml"), "{e}");
    }
}
