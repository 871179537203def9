//! Reading and writing result CSV files, and the atomic-write primitive
//! every file the results code writes goes through.
//!
//! Atomicity: [`write_atomic`] writes into a `NamedTempFile` created in the
//! target's own directory (so the rename never crosses a file system),
//! flushes and fsyncs it, then renames it over the target. A process killed
//! at any point leaves either the old target (or none) or the complete new
//! one, plus at worst a stray `.tmp*` file that readers ignore.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

use super::model::ResultRow;

/// Writes `path` atomically: `fill` writes the content into a temporary
/// file beside it, which is synced and renamed over `path` only if `fill`
/// succeeded. Creates the parent directory if needed.
pub fn write_atomic(path: &Path, fill: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    {
        let mut w = io::BufWriter::new(tmp.as_file_mut());
        fill(&mut w).with_context(|| format!("writing {}", path.display()))?;
        w.flush()
            .with_context(|| format!("writing {}", path.display()))?;
    }
    finish(tmp, path)
}

/// Syncs the finished temporary file and renames it over `path`.
fn finish(tmp: NamedTempFile, path: &Path) -> Result<()> {
    // Temporary files are created owner-only; results are for sharing.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .with_context(|| format!("setting the permissions of {}", path.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming the temporary file over {}", path.display()))?;
    Ok(())
}

/// Serialises `rows` as CSV (with a header) into `w`.
pub fn write_rows(w: &mut dyn Write, rows: &[ResultRow]) -> Result<()> {
    let mut out = csv::Writer::from_writer(w);
    for row in rows {
        out.serialize(row)?;
    }
    out.flush()?;
    Ok(())
}

/// Writes `rows` to `path` as CSV, atomically.
pub fn write_rows_file(path: &Path, rows: &[ResultRow]) -> Result<()> {
    write_atomic(path, |w| write_rows(w, rows))
}

/// Reads a results CSV file. Errors name the file and the line.
pub fn read_rows_file(path: &Path) -> Result<Vec<ResultRow>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    reader
        .deserialize()
        .map(|r| r.with_context(|| format!("reading {}", path.display())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::model::fixtures;

    #[test]
    fn csv_round_trips_every_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        let mut rows =
            fixtures::run(fixtures::cell("fixed", "forkexit", 4, 2), 123.0, 0.1, 7.0).rows();
        rows[2].value = 0.1 + 0.2; // needs the shortest round-trip float form
        write_rows_file(&path, &rows).unwrap();
        let back = read_rows_file(&path).unwrap();
        assert_eq!(back, rows);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(
            "run_id,time,git_rev,variant,features,workload,params,cpus,accel,machine,rep,\
             outcome,metric,value,unit,cpu,from,to\n"
        ));
        // Empty scope columns for a Global metric.
        assert!(text
            .lines()
            .nth(1)
            .unwrap()
            .ends_with(",ok,run.outcome,1.0,bool,,,"));
    }

    #[test]
    fn bad_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.csv");
        fs::write(&path, "run_id,time\nx,y\n").unwrap();
        let err = format!("{:#}", read_rows_file(&path).unwrap_err());
        assert!(err.contains("bad.csv"), "{err}");
    }

    /// A writer that dies between writing and renaming leaves the target
    /// absent (or as it was), never half-written.
    #[test]
    fn failed_write_leaves_no_partial_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        let rows = fixtures::run(fixtures::cell("fixed", "forkexit", 2, 1), 1.0, 1.0, 1.0).rows();
        let err = write_atomic(&path, |w| {
            write_rows(w, &rows)?;
            anyhow::bail!("killed before the rename")
        });
        assert!(err.is_err());
        assert!(!path.exists());
        // Nothing but (at most) temporary files is left behind.
        for entry in fs::read_dir(dir.path()).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(name.to_string_lossy().starts_with(".tmp-"), "{name:?}");
        }

        // With an old version present, a failed rewrite keeps it whole.
        write_rows_file(&path, &rows).unwrap();
        let before = fs::read(&path).unwrap();
        let _ = write_atomic(&path, |w| {
            w.write_all(b"half a ro")?;
            anyhow::bail!("killed")
        });
        assert_eq!(fs::read(&path).unwrap(), before);
    }

    /// Rows written by the child writer below: enough that a write takes
    /// a while, so a kill lands in the middle of one.
    fn big_rows() -> Vec<ResultRow> {
        let run = fixtures::run(fixtures::cell("fixed", "forkexit", 4, 1), 1.0, 1.0, 1.0);
        let rows = run.rows();
        rows.iter().cycle().take(20_000).cloned().collect()
    }

    /// Not a test by itself: the child process of the test below. It
    /// rewrites the file named by PMAPLAB_ATOMIC_CHILD until killed.
    #[test]
    #[ignore]
    fn atomic_writer_child() {
        let Some(path) = std::env::var_os("PMAPLAB_ATOMIC_CHILD") else {
            return;
        };
        let rows = big_rows();
        loop {
            write_rows_file(Path::new(&path), &rows).unwrap();
        }
    }

    /// A real process killed (SIGKILL) at various points while it writes
    /// results leaves the target either absent or complete, never partial.
    #[test]
    fn killed_writer_leaves_target_absent_or_whole() {
        let expected = big_rows().len();
        for delay_ms in [1u64, 40, 150] {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("results.csv");
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "results::csv::tests::atomic_writer_child"])
                .args(["--ignored", "--test-threads=1"])
                .env("PMAPLAB_ATOMIC_CHILD", &target)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            child.kill().unwrap();
            child.wait().unwrap();
            if target.exists() {
                assert_eq!(read_rows_file(&target).unwrap().len(), expected);
            }
            // A reader of the directory ignores the stray temporary file.
            let rows = crate::results::store::load_rows(dir.path()).unwrap();
            assert!(rows.is_empty() || rows.len() == expected);
        }
    }
}
