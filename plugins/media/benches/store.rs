//! Prints the content store's cost with 1,000 cached tracks: opening it (the scan at start),
//! the memory its index takes, its disk use next to the bytes it holds, and one eviction
//! pass. The tracks are 256 KiB each here (256 MB in all); the costs are per file, not per
//! byte, except the disk use.
//! Run: cargo bench --workspace --bench store

use std::collections::HashSet;
use std::time::Instant;

use whatnext_core::media::{AudioFormat, ContentHash, Media};
use whatnext_media::store::Store;

const TRACKS: usize = 1_000;
const SIZE: usize = 256 * 1024;

/// Resident memory in KiB (Linux), to see what the index costs.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Bytes the folder's files take on disk (allocated blocks).
fn disk_bytes(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.blocks() * 512)
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(dir.path(), u64::MAX).expect("store");
    let mut data = vec![0u8; SIZE];
    for i in 0..TRACKS {
        data[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let media = Media {
            hash: ContentHash::of_bytes(&data),
            size: SIZE as u64,
            format: AudioFormat::Flac,
        };
        std::fs::write(store.copy_path(&media), &data).expect("write");
    }
    let before = rss_kib();
    let started = Instant::now();
    let (store, mut copies) =
        Store::open(dir.path(), (TRACKS as u64 - 100) * SIZE as u64).expect("reopen");
    let open = started.elapsed();
    let index_kib = rss_kib().saturating_sub(before);
    assert_eq!(copies.len(), TRACKS);
    let held: u64 = Store::used(&copies);
    let disk = disk_bytes(dir.path());
    let keep: HashSet<ContentHash> = copies.keys().take(3).copied().collect();
    let started = Instant::now();
    let evicted = store.evict(&mut copies, &keep);
    let evict = started.elapsed();
    println!(
        "{TRACKS} cached tracks of {} KiB: open (scan) {open:?}, index ~{index_kib} KiB resident, \
         {:.1} MB held, {:.1} MB on disk; one eviction pass removed {} in {evict:?}",
        SIZE / 1024,
        held as f64 / 1e6,
        disk as f64 / 1e6,
        evicted.len()
    );
    println!(
        "figure: content store, open with {TRACKS} tracks | {:.1} ms | —",
        open.as_secs_f64() * 1e3
    );
    println!("figure: content store index memory, {TRACKS} tracks | ~{index_kib} KiB | —");
    println!(
        "figure: content store disk overhead, {TRACKS} tracks | {:.2}% over the bytes held | —",
        100.0 * (disk as f64 - held as f64) / held as f64
    );
    println!(
        "figure: content store eviction pass, {TRACKS} tracks | {:.1} ms | —",
        evict.as_secs_f64() * 1e3
    );
}
