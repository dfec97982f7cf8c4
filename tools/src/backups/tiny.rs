//! Database dumps that were never more than headers. A `mysqldump` that
//! cannot log in still writes its banner, and `| gzip` turns nothing into a
//! 20-byte file, every night: the job is on time and never shrank, so the age
//! and size checks call it healthy. This reads each dump of a job (gzip
//! decompressed, a bounded prefix) for a table definition or a row; a job
//! whose every dump has none is a finding.

use std::io::Read;

use flate2::read::MultiGzDecoder;

use crate::finding::{Category, Finding, Severity};
use crate::host::Host;

/// A compressed dump below this size cannot hold a real table.
pub const TINY_COMPRESSED: u64 = 4096;
/// How much of a dump (decompressed) is searched for a table or a row.
const SCAN_BYTES: u64 = 4 << 20;
/// Dumps of a job read at most (newest first).
const MAX_DUMPS: usize = 10;
/// What a dump with data contains.
const MARKERS: &[&[u8]] = &[b"CREATE TABLE", b"INSERT INTO", b"COPY ", b"create table", b"insert into"];

/// Is this file name a database dump?
pub fn is_dump(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    [".sql", ".sql.gz", ".sql.zst", ".sql.xz", ".sql.bz2", ".dump", ".dump.gz"].iter().any(|s| p.ends_with(s))
}

/// What one dump holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A table definition or a row was found.
    Data,
    /// Only headers (or nothing).
    HeadersOnly,
    /// Could not be read; says why.
    Unknown(String),
}

/// Look inside one dump.
pub fn inspect(host: &Host, path: &str) -> Content {
    let (file, meta) = match host.open_file(path) {
        Ok(f) => f,
        Err(e) => return Content::Unknown(e.to_string()),
    };
    let lower = path.to_ascii_lowercase();
    let compressed_other = [".zst", ".xz", ".bz2"].iter().any(|s| lower.ends_with(s));
    if compressed_other {
        // Not decompressed here: judged by size alone.
        return if meta.len() < TINY_COMPRESSED { Content::HeadersOnly } else { Content::Data };
    }
    let mut buf = Vec::new();
    let read = if lower.ends_with(".gz") {
        MultiGzDecoder::new(file).take(SCAN_BYTES).read_to_end(&mut buf)
    } else {
        file.take(SCAN_BYTES).read_to_end(&mut buf)
    };
    // A truncated gzip stream still yields what it had: judge that.
    if let Err(e) = read {
        if buf.is_empty() && meta.len() >= TINY_COMPRESSED {
            return Content::Unknown(format!("cannot decompress: {e}"));
        }
    }
    if MARKERS.iter().any(|m| memchr::memmem::find(&buf, m).is_some()) { Content::Data } else { Content::HeadersOnly }
}

/// A finding when every dump of the job (`paths`, newest first) holds no table and no row.
pub fn judge(host: &Host, job: &str, subject: &str, paths: &[(&str, Option<u64>)]) -> Option<Finding> {
    let dumps: Vec<&(&str, Option<u64>)> = paths.iter().filter(|(p, _)| is_dump(p)).take(MAX_DUMPS).collect();
    if dumps.is_empty() {
        return None;
    }
    let mut evidence = Vec::new();
    for (p, size) in &dumps {
        match inspect(host, p) {
            Content::Data | Content::Unknown(_) => return None,
            Content::HeadersOnly => {
                let size = size.map(crate::format::human_bytes).unwrap_or_else(|| "size unknown".into());
                evidence.push(format!("{p} ({size}): no CREATE TABLE, INSERT or COPY"));
            }
        }
    }
    let n = dumps.len();
    let mut f = Finding::new(
        "backups.dumps-empty",
        Severity::High,
        Category::Backups,
        subject.to_string(),
        format!("Every database dump of `{job}` is empty: headers only, no table and no row"),
    );
    for e in evidence.iter().take(3) {
        f = f.evidence(e.clone());
    }
    if n > 3 {
        f = f.evidence(format!("and {} more like them", n - 3));
    }
    Some(f.evidence(format!("{n} dump(s) read: they never shrank because they never held data, so the age and size checks pass"))
        .fix("Run the dump command by hand and read its errors (a wrong password or a missing grant prints a banner and exits); add `set -o pipefail` so `| gzip` stops hiding the failure, then check the new dump with `zcat FILE | grep -c 'INSERT INTO'`."))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    const HEADER: &[u8] = b"-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB\n-- Host: localhost    Database: shop\n/*!40101 SET NAMES utf8mb4 */;\n";

    #[test]
    fn headers_only_dumps_are_a_finding_and_real_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let b = dir.path().join("var/backups/mysql");
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("shop-2.sql.gz"), gz(HEADER)).unwrap();
        std::fs::write(b.join("shop-1.sql.gz"), gz(b"")).unwrap();
        let mut real = HEADER.to_vec();
        real.extend_from_slice(b"CREATE TABLE `orders` (id int);\nINSERT INTO `orders` VALUES (1);\n");
        std::fs::write(b.join("real.sql"), &real).unwrap();
        let host = Host::at(dir.path());
        let tiny = [("/var/backups/mysql/shop-2.sql.gz", Some(90)), ("/var/backups/mysql/shop-1.sql.gz", Some(20))];
        let f = judge(&host, "mysql", "mysql", &tiny).unwrap();
        assert_eq!(f.id, "backups.dumps-empty");
        assert_eq!(f.evidence.len(), 3, "{f:#?}");
        // One dump with data: the job is not "never held data".
        let mixed = [tiny[0], ("/var/backups/mysql/real.sql", Some(real.len() as u64))];
        assert!(judge(&host, "mysql", "mysql", &mixed).is_none());
        // Not dumps at all: not this check's business.
        assert!(judge(&host, "files", "files", &[("/var/backups/site.tar.gz", Some(10))]).is_none());
    }

    #[test]
    fn garbage_and_truncated_gzip_do_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.sql.gz"), b"\x1f\x8b\x08\x00garbage").unwrap();
        let mut cut = gz(b"CREATE TABLE t (a int);\n");
        cut.truncate(cut.len() - 6);
        std::fs::write(dir.path().join("cut.sql.gz"), &cut).unwrap();
        let host = Host::at(dir.path());
        assert_eq!(inspect(&host, "/bad.sql.gz"), Content::HeadersOnly);
        assert_eq!(inspect(&host, "/cut.sql.gz"), Content::Data);
    }
}
