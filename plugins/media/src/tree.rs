//! Verified streaming on BLAKE3's own tree: a file is cut into [`LEAF`]-byte leaves, and the
//! chaining values of the leaves (the "outboard", 32 bytes per leaf) merge up to the file's
//! BLAKE3 hash. A receiver checks the outboard against the hash it already trusts (the
//! track's media), then checks each leaf as it arrives: a lying peer is caught at its first
//! bad leaf, and no byte is written before it is verified.

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};

use whatnext_core::media::ContentHash;

/// Bytes per leaf: 64 BLAKE3 chunks, a power of two, so every leaf is a whole subtree.
pub const LEAF: u64 = 64 * 1024;

/// How many leaves a file of `size` bytes has (an empty file has one, empty).
pub fn leaves(size: u64) -> u64 {
    size.div_ceil(LEAF).max(1)
}

/// The byte range of leaf `i` in a file of `size` bytes.
pub fn leaf_range(size: u64, i: u64) -> std::ops::Range<u64> {
    let start = i * LEAF;
    start.min(size)..(start + LEAF).min(size)
}

/// The chaining value of leaf `i` (its bytes `data`).
pub fn leaf_cv(i: u64, data: &[u8]) -> ChainingValue {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(i * LEAF);
    hasher.update(data);
    hasher.finalize_non_root()
}

/// The outboard of a whole file held in memory (for tests and small files).
pub fn outboard_of(data: &[u8]) -> Vec<ChainingValue> {
    let size = data.len() as u64;
    if leaves(size) == 1 {
        return Vec::new();
    }
    (0..leaves(size))
        .map(|i| {
            let range = leaf_range(size, i);
            leaf_cv(i, &data[range.start as usize..range.end as usize])
        })
        .collect()
}

/// A file on disk read once, leaf by leaf: its hash, size and outboard bytes (32 a leaf,
/// none for a one-leaf file). Adding a file computes both at once, so the first peer to
/// ask for the outboard does not wait for a second pass over the file.
pub fn read_file_tree(path: &std::path::Path) -> std::io::Result<(ContentHash, u64, Vec<u8>)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut buffer = vec![0u8; LEAF as usize];
    if leaves(size) == 1 {
        let data = &mut buffer[..size as usize];
        file.read_exact(data)?;
        return Ok((
            ContentHash(*blake3::hash(data).as_bytes()),
            size,
            Vec::new(),
        ));
    }
    let mut cvs = Vec::with_capacity(leaves(size) as usize);
    for i in 0..leaves(size) {
        let range = leaf_range(size, i);
        let leaf = &mut buffer[..(range.end - range.start) as usize];
        file.read_exact(leaf)?;
        cvs.push(leaf_cv(i, leaf));
    }
    let hash = merge(&cvs, true).ok_or_else(|| std::io::Error::other("an empty outboard"))?;
    Ok((ContentHash(hash), size, cvs.concat()))
}

/// Merges leaf chaining values into the root hash, left-balanced as BLAKE3 builds its tree.
fn merge(cvs: &[ChainingValue], root: bool) -> Option<[u8; 32]> {
    match cvs.len() {
        0 => None,
        1 => Some(cvs[0]),
        n => {
            let split = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            let left = merge(&cvs[..split], false)?;
            let right = merge(&cvs[split..], false)?;
            Some(if root {
                *merge_subtrees_root(&left, &right, Mode::Hash).as_bytes()
            } else {
                merge_subtrees_non_root(&left, &right, Mode::Hash)
            })
        }
    }
}

/// Why received bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The outboard has the wrong number of leaves for the file's size.
    #[error("the outboard has {got} leaves; a file of {size} bytes has {want}")]
    OutboardLength {
        /// Leaves received.
        got: usize,
        /// Leaves expected.
        want: u64,
        /// The file's size.
        size: u64,
    },
    /// The outboard does not hash to the file's hash.
    #[error("the outboard does not match the file's hash")]
    OutboardMismatch,
    /// A leaf does not match its chaining value (or, for a one-leaf file, the hash).
    #[error("leaf {leaf} does not match the file's hash")]
    Leaf {
        /// Which leaf.
        leaf: u64,
    },
}

/// A file's verified outboard: what each arriving leaf is checked against.
#[derive(Clone, Debug)]
pub struct Verifier {
    hash: ContentHash,
    size: u64,
    cvs: Vec<ChainingValue>,
}

impl Verifier {
    /// Checks an outboard (leaf chaining values, empty for a one-leaf file) against the
    /// file's `hash` and `size`.
    pub fn new(hash: ContentHash, size: u64, cvs: Vec<ChainingValue>) -> Result<Self, VerifyError> {
        let want = leaves(size);
        if want == 1 {
            if !cvs.is_empty() {
                return Err(VerifyError::OutboardLength {
                    got: cvs.len(),
                    want: 0,
                    size,
                });
            }
        } else {
            if cvs.len() as u64 != want {
                return Err(VerifyError::OutboardLength {
                    got: cvs.len(),
                    want,
                    size,
                });
            }
            if merge(&cvs, true) != Some(hash.0) {
                return Err(VerifyError::OutboardMismatch);
            }
        }
        Ok(Self { hash, size, cvs })
    }

    /// How many leaves the file has.
    pub fn leaves(&self) -> u64 {
        leaves(self.size)
    }

    /// The file's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The outboard, for storing next to a partial file.
    pub fn cvs(&self) -> &[ChainingValue] {
        &self.cvs
    }

    /// Checks leaf `i`'s bytes.
    pub fn check(&self, i: u64, data: &[u8]) -> Result<(), VerifyError> {
        let range = leaf_range(self.size, i);
        let ok = if data.len() as u64 != range.end - range.start {
            false
        } else if self.cvs.is_empty() {
            i == 0 && blake3::hash(data).as_bytes() == &self.hash.0
        } else {
            self.cvs.get(i as usize) == Some(&leaf_cv(i, data))
        };
        if ok {
            Ok(())
        } else {
            Err(VerifyError::Leaf { leaf: i })
        }
    }
}

/// Outboard bytes on the wire and on disk: 32 bytes per leaf.
pub fn cvs_from_bytes(bytes: &[u8]) -> Option<Vec<ChainingValue>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(32)
            .filter_map(|c| <[u8; 32]>::try_from(c).ok())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// The leaves and outboard merge to exactly the hash `blake3::hash` gives, for sizes
    /// around every boundary (one leaf, a leaf and a byte, odd leaf counts, powers of two).
    #[test]
    fn leaves_merge_to_the_files_blake3_hash() {
        let l = LEAF as usize;
        for len in [
            1,
            1000,
            l,
            l + 1,
            2 * l,
            3 * l + 5,
            4 * l,
            5 * l - 1,
            7 * l + 3,
            16 * l + 1,
        ] {
            let bytes = data(len);
            let hash = ContentHash(*blake3::hash(&bytes).as_bytes());
            let verifier = Verifier::new(hash, len as u64, outboard_of(&bytes))
                .unwrap_or_else(|e| panic!("{len} bytes: {e}"));
            for i in 0..leaves(len as u64) {
                let r = leaf_range(len as u64, i);
                verifier
                    .check(i, &bytes[r.start as usize..r.end as usize])
                    .unwrap_or_else(|e| panic!("{len} bytes, leaf {i}: {e}"));
            }
        }
    }

    #[test]
    fn a_changed_byte_is_caught_in_its_leaf_and_a_forged_outboard_is_refused() {
        let l = LEAF as usize;
        let bytes = data(3 * l + 10);
        let hash = ContentHash(*blake3::hash(&bytes).as_bytes());
        let mut outboard = outboard_of(&bytes);
        let verifier = Verifier::new(hash, bytes.len() as u64, outboard.clone()).expect("valid");
        let mut bad = bytes[l..2 * l].to_vec();
        bad[17] ^= 1;
        assert_eq!(verifier.check(1, &bad), Err(VerifyError::Leaf { leaf: 1 }));
        // The right bytes in the wrong place, or cut short, are refused too.
        assert!(verifier.check(2, &bytes[l..2 * l]).is_err());
        assert!(verifier.check(1, &bytes[l..2 * l - 1]).is_err());
        outboard[2][0] ^= 1;
        assert_eq!(
            Verifier::new(hash, bytes.len() as u64, outboard).err(),
            Some(VerifyError::OutboardMismatch)
        );
        assert!(matches!(
            Verifier::new(hash, bytes.len() as u64, Vec::new()),
            Err(VerifyError::OutboardLength { .. })
        ));
    }

    #[test]
    fn a_file_read_once_gives_blake3s_hash_and_the_outboard() {
        let dir = tempfile::tempdir().expect("dir");
        for len in [0, 1000, LEAF as usize, 3 * LEAF as usize + 7] {
            let bytes = data(len);
            let path = dir.path().join(format!("{len}.bin"));
            std::fs::write(&path, &bytes).expect("write");
            let (hash, size, outboard) = read_file_tree(&path).expect("read");
            assert_eq!(hash.0, *blake3::hash(&bytes).as_bytes(), "{len} bytes");
            assert_eq!(size, len as u64);
            assert_eq!(outboard, outboard_of(&bytes).concat(), "{len} bytes");
        }
    }

    #[test]
    fn a_one_leaf_file_is_checked_against_the_hash_itself() {
        let bytes = data(5000);
        let hash = ContentHash(*blake3::hash(&bytes).as_bytes());
        let verifier = Verifier::new(hash, 5000, Vec::new()).expect("valid");
        assert!(verifier.check(0, &bytes).is_ok());
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert!(verifier.check(0, &bad).is_err());
    }
}
