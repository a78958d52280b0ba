//! The content store: verified copies of other peers' files, by hash, under the data dir.
//!
//! - `<hash>.<ext>`: a whole, verified copy (renamed into place only once every leaf checked
//!   out, so a file with this name is always whole);
//! - `<hash>.part` and `<hash>.outboard`: a transfer under way. The outboard was verified
//!   against the hash before it was written; after a restart each leaf of the part file is
//!   checked again, so a transfer resumes from what is really there.
//!
//! Least recently used copies go when the store is over its cap, never the ones the party is
//! about to play. A copy's modification time is its last use.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use whatnext_core::media::{AudioFormat, ContentHash, Media};

use crate::tree::{self, Verifier};

/// The content store's folder and size cap.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
    cap: u64,
}

impl Store {
    /// Opens (creating) the store folder; returns it and the whole copies found there.
    pub fn open(dir: &Path, cap: u64) -> io::Result<(Self, HashMap<ContentHash, PathBuf>)> {
        fs::create_dir_all(dir)?;
        let mut copies = HashMap::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let (Some(stem), Some(ext)) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.extension().and_then(|s| s.to_str()),
            ) else {
                continue;
            };
            if let (Some(hash), Some(_)) = (
                ContentHash::from_hex(stem),
                AudioFormat::from_extension(ext),
            ) {
                copies.insert(hash, path);
            }
        }
        Ok((
            Self {
                dir: dir.to_owned(),
                cap,
            },
            copies,
        ))
    }

    /// Where a whole copy of `media` lives.
    pub fn copy_path(&self, media: &Media) -> PathBuf {
        self.dir
            .join(format!("{}.{}", media.hash, media.format.extension()))
    }

    fn part_path(&self, hash: &ContentHash) -> PathBuf {
        self.dir.join(format!("{hash}.part"))
    }

    fn outboard_path(&self, hash: &ContentHash) -> PathBuf {
        self.dir.join(format!("{hash}.outboard"))
    }

    /// The outboard kept from an interrupted transfer, if it is there and still checks out.
    pub fn saved_outboard(&self, media: &Media) -> Option<Verifier> {
        let bytes = fs::read(self.outboard_path(&media.hash)).ok()?;
        Verifier::new(media.hash, media.size, tree::cvs_from_bytes(&bytes)?).ok()
    }

    /// Starts (or resumes) a transfer of `media` with its verified outboard: the part file,
    /// and which of its leaves are already there and correct.
    pub fn begin(&self, media: &Media, verifier: Verifier) -> io::Result<Partial> {
        let outboard: Vec<u8> = verifier.cvs().iter().flatten().copied().collect();
        write_durably(&self.outboard_path(&media.hash), &outboard)?;
        let path = self.part_path(&media.hash);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let on_disk = file.metadata()?.len();
        let mut have = vec![false; verifier.leaves() as usize];
        let mut buffer = Vec::new();
        for (i, slot) in have.iter_mut().enumerate() {
            let range = tree::leaf_range(media.size, i as u64);
            if range.end > on_disk {
                break;
            }
            buffer.resize((range.end - range.start) as usize, 0);
            file.seek(SeekFrom::Start(range.start))?;
            file.read_exact(&mut buffer)?;
            *slot = verifier.check(i as u64, &buffer).is_ok();
        }
        Ok(Partial {
            media: *media,
            verifier,
            file,
            have,
            written: 0,
            flushing: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Moves a finished transfer into place; returns the copy's path.
    pub fn finish(&self, partial: Partial) -> io::Result<PathBuf> {
        partial.file.sync_all()?;
        let to = self.copy_path(&partial.media);
        fs::rename(self.part_path(&partial.media.hash), &to)?;
        let _ = fs::remove_file(self.outboard_path(&partial.media.hash));
        sync_dir(&self.dir);
        Ok(to)
    }

    /// Marks a copy as just used, for eviction.
    pub fn touch(&self, path: &Path) {
        if let Ok(file) = File::options().write(true).open(path) {
            let _ = file.set_modified(SystemTime::now());
        }
    }

    /// Removes least recently used copies until the store is under its cap, keeping `keep`
    /// (the current and next tracks). Returns the hashes removed.
    pub fn evict(
        &self,
        copies: &mut HashMap<ContentHash, PathBuf>,
        keep: &HashSet<ContentHash>,
    ) -> Vec<ContentHash> {
        let mut sized: Vec<(SystemTime, u64, ContentHash)> = copies
            .iter()
            .filter_map(|(hash, path)| {
                let meta = fs::metadata(path).ok()?;
                Some((meta.modified().ok()?, meta.len(), *hash))
            })
            .collect();
        let mut total: u64 = sized.iter().map(|(_, len, _)| len).sum();
        sized.sort();
        let mut removed = Vec::new();
        for (_, len, hash) in sized {
            if total <= self.cap {
                break;
            }
            if keep.contains(&hash) {
                continue;
            }
            if let Some(path) = copies.get(&hash)
                && fs::remove_file(path).is_ok()
            {
                copies.remove(&hash);
                total -= len;
                removed.push(hash);
            }
        }
        removed
    }

    /// The bytes the whole copies take.
    pub fn used(copies: &HashMap<ContentHash, PathBuf>) -> u64 {
        copies
            .values()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// A transfer under way: the part file and the leaves already verified in it.
#[derive(Debug)]
pub struct Partial {
    media: Media,
    verifier: Verifier,
    file: File,
    have: Vec<bool>,
    /// Leaves written by this process, for starting the disk's writeback as they come.
    written: u64,
    flushing: Arc<AtomicBool>,
}

/// Leaves (of 64 KiB, so 8 MiB) between starts of a background flush of the part file, so
/// the fsync that ends a transfer has little left to wait for.
const WRITEBACK_EVERY: u64 = 128;

/// Flushes the file on a thread of its own unless a flush is still running. Only a head
/// start: the fsync in [`Store::finish`] is what makes the file durable, so a failure here
/// changes nothing.
fn start_writeback(file: &File, flushing: &Arc<AtomicBool>) {
    if flushing.swap(true, Ordering::AcqRel) {
        return;
    }
    let Ok(file) = file.try_clone() else {
        flushing.store(false, Ordering::Release);
        return;
    };
    let done = flushing.clone();
    let spawned = std::thread::Builder::new()
        .name("media-flush".into())
        .spawn(move || {
            let _ = file.sync_data();
            done.store(false, Ordering::Release);
        });
    if spawned.is_err() {
        flushing.store(false, Ordering::Release);
    }
}

impl Partial {
    /// The file's verifier (its outboard).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Whether leaf `i` is here.
    pub fn has(&self, i: u64) -> bool {
        self.have.get(i as usize).copied().unwrap_or(false)
    }

    /// How many leaves are here.
    pub fn done(&self) -> u64 {
        self.have.iter().filter(|h| **h).count() as u64
    }

    /// Every leaf is here.
    pub fn complete(&self) -> bool {
        self.have.iter().all(|h| *h)
    }

    /// Checks leaf `i` and writes it. Nothing unverified is written.
    pub fn put(&mut self, i: u64, data: &[u8]) -> Result<(), PutError> {
        self.verifier.check(i, data).map_err(PutError::Refused)?;
        let range = tree::leaf_range(self.media.size, i);
        self.file.seek(SeekFrom::Start(range.start))?;
        self.file.write_all(data)?;
        if let Some(slot) = self.have.get_mut(i as usize) {
            *slot = true;
        }
        self.written += 1;
        if self.written.is_multiple_of(WRITEBACK_EVERY) {
            start_writeback(&self.file, &self.flushing);
        }
        Ok(())
    }
}

/// A leaf that could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// It did not match the hash: the sender lied (or its copy is damaged).
    #[error("{0}")]
    Refused(tree::VerifyError),
    /// The disk refused the write.
    #[error("cannot write to the content store: {0}")]
    Disk(#[from] io::Error),
}

/// Writes a small file so that it is whole on disk before this returns.
fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_dir(dir: &Path) {
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media_of(bytes: &[u8]) -> Media {
        Media {
            hash: ContentHash(*blake3::hash(bytes).as_bytes()),
            size: bytes.len() as u64,
            format: AudioFormat::Wav,
        }
    }

    /// Not periodic, so no two leaves are alike.
    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        let mut x = seed as u64 * 2 + 1;
        (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect()
    }

    /// A transfer cut short resumes from the leaves on disk, and only verified leaves count.
    #[test]
    fn a_transfer_resumes_from_the_leaves_already_on_disk() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, _) = Store::open(dir.path(), u64::MAX).expect("store");
        let data = bytes(5 * tree::LEAF as usize + 100, 7);
        let media = media_of(&data);
        let verifier =
            || Verifier::new(media.hash, media.size, tree::outboard_of(&data)).expect("valid");
        let leaf = |i: u64| {
            let r = tree::leaf_range(media.size, i);
            &data[r.start as usize..r.end as usize]
        };
        let mut partial = store.begin(&media, verifier()).expect("begin");
        partial.put(0, leaf(0)).expect("leaf 0");
        partial.put(1, leaf(1)).expect("leaf 1");
        assert!(matches!(partial.put(2, leaf(3)), Err(PutError::Refused(_))));
        drop(partial);
        // Restarted: the saved outboard still checks out, and two leaves are there.
        let saved = store.saved_outboard(&media).expect("outboard kept");
        let mut partial = store.begin(&media, saved).expect("resume");
        assert_eq!(partial.done(), 2);
        for i in 2..tree::leaves(media.size) {
            partial.put(i, leaf(i)).expect("leaf");
        }
        assert!(partial.complete());
        let path = store.finish(partial).expect("finish");
        assert_eq!(fs::read(&path).expect("copy"), data);
        let (_, found) = Store::open(dir.path(), u64::MAX).expect("reopen");
        assert_eq!(found.get(&media.hash), Some(&path));
    }

    #[test]
    fn eviction_removes_the_least_recently_used_copy_but_never_one_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, _) = Store::open(dir.path(), 2_500).expect("store");
        let mut copies = HashMap::new();
        let mut hashes = Vec::new();
        for seed in 1..=3u8 {
            let data = bytes(1_000, seed);
            let media = media_of(&data);
            let path = store.copy_path(&media);
            fs::write(&path, &data).expect("write");
            let age = SystemTime::now() - std::time::Duration::from_secs(100 - seed as u64);
            File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(age))
                .expect("age");
            copies.insert(media.hash, path);
            hashes.push(media.hash);
        }
        // The oldest is the current track: the next oldest goes instead.
        let keep = HashSet::from([hashes[0]]);
        assert_eq!(store.evict(&mut copies, &keep), vec![hashes[1]]);
        assert!(copies.contains_key(&hashes[0]) && copies.contains_key(&hashes[2]));
        assert_eq!(Store::used(&copies), 2_000);
    }
}
