//! `/proc/cpuinfo`: the physical address width, from the first
//! `address sizes : N bits physical, M bits virtual` line (x86 only; other
//! architectures do not print it, and the width is then unknown: a gap).

use std::path::Path;

use super::read::lines;
use super::HostError;

/// The physical address width in bits, `None` when no line gives it.
/// A line that names the width but does not parse is an error.
pub fn phys_bits(path: &Path, data: &[u8]) -> Result<Option<u8>, HostError> {
    for line in lines(path, data)? {
        let Some(rest) = line.text.strip_prefix(b"address sizes") else {
            continue;
        };
        let text = String::from_utf8_lossy(rest);
        let bits = text
            .trim_start()
            .strip_prefix(':')
            .and_then(|t| t.trim_start().split_once(" bits physical"))
            .and_then(|(n, _)| n.trim().parse::<u8>().ok())
            .filter(|&b| (12..=64).contains(&b));
        return match bits {
            Some(b) => Ok(Some(b)),
            None => Err(HostError::Parse {
                path: path.to_path_buf(),
                line: line.no,
                why: "not `address sizes : N bits physical, M bits virtual` (N from 12 to 64)"
                    .into(),
            }),
        };
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_width() {
        let p = Path::new("cpuinfo");
        let t = b"processor\t: 0\naddress sizes\t: 46 bits physical, 48 bits virtual\npower management:\n\naddress sizes\t: 39 bits physical, 48 bits virtual\n";
        assert_eq!(phys_bits(p, t).expect("parses"), Some(46));
        assert_eq!(phys_bits(p, b"processor : 0\n").expect("parses"), None);
        assert!(matches!(
            phys_bits(p, b"address sizes\t: many bits physical\n"),
            Err(HostError::Parse { line: 1, .. })
        ));
        assert!(phys_bits(p, b"address sizes : 99 bits physical\n").is_err());
    }
}
