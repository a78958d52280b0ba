//! The identity key file: one ed25519 secret, created on first run, never replaced silently.
//! The libp2p PeerId is derived from it, so invites survive restarts. The app keeps it in its
//! data directory; the relay in its `--key-file`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use libp2p_identity::PeerId;

/// The first line of the key file, naming its format.
const HEADER: &str = "whatnext-identity ed25519 v1";

/// Why the identity key file could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The file exists but does not hold a key in whatnext's format. It is never overwritten.
    #[error(
        "the identity key file {path} is corrupt ({reason}). It was left as it is. \
         Restore it from a backup, or move it away to start with a new identity \
         (your peer ID, and every invite you shared, will change)"
    )]
    Corrupt {
        /// The key file.
        path: PathBuf,
        /// What is wrong with its contents.
        #[source]
        reason: CorruptKey,
    },
    /// The file (or its folder) could not be read or written.
    #[error("cannot read or write the identity key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// What is wrong with the contents of a key file: the reason given in
/// [`IdentityError::Corrupt`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorruptKey {
    /// The bytes are not UTF-8 text.
    #[error("it is not text")]
    NotText,
    /// The first line is not the format header.
    #[error("its first line is not `{HEADER}`")]
    WrongHeader,
    /// There is no second line with the key.
    #[error("the key line is missing")]
    MissingKeyLine,
    /// The key line does not have the 64 characters of a 32-byte key in hexadecimal.
    #[error("the key has {digits} hex digits instead of 64")]
    WrongLength {
        /// How many characters the key line has.
        digits: usize,
    },
    /// The key line has a character that is not a hexadecimal digit.
    #[error("the key is not hexadecimal")]
    NotHex,
}

/// An identity: the signing key and the peer id derived from it.
#[derive(Clone)]
pub struct Identity {
    /// The ed25519 secret; everything this peer signs is signed with it.
    pub key: SigningKey,
    /// The libp2p peer id derived from the key's public half.
    pub peer_id: PeerId,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The libp2p keypair for the network layer, from the same secret.
    pub fn libp2p_keypair(&self) -> libp2p_identity::Keypair {
        keypair_from(self.key.to_bytes())
    }

    fn from_key(key: SigningKey) -> Self {
        let secret = key.to_bytes();
        let peer_id = keypair_from(secret).public().to_peer_id();
        Self { key, peer_id }
    }
}

fn keypair_from(secret: [u8; 32]) -> libp2p_identity::Keypair {
    match libp2p_identity::ed25519::SecretKey::try_from_bytes(secret) {
        Ok(secret) => {
            libp2p_identity::Keypair::from(libp2p_identity::ed25519::Keypair::from(secret))
        }
        // Any 32 bytes are a valid ed25519 secret, so this cannot happen.
        Err(_) => unreachable!("32 bytes are always an ed25519 secret"),
    }
}

/// Loads the key at `path`, or creates one (mode 0600) if there is no file.
pub fn load_or_create(path: &Path) -> Result<Identity, IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    };
    match fs::read(path) {
        Ok(bytes) => {
            parse(&bytes)
                .map(Identity::from_key)
                .map_err(|reason| IdentityError::Corrupt {
                    path: path.to_owned(),
                    reason,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            write_new(path, &key).map_err(io)?;
            tracing::info!(path = %path.display(), "created a new identity key");
            Ok(Identity::from_key(key))
        }
        Err(e) => Err(io(e)),
    }
}

/// Reads the header line and the 64 hex digits of the secret. Works on characters, never
/// byte offsets, so no content (non-ASCII included) can make it panic.
fn parse(bytes: &[u8]) -> Result<SigningKey, CorruptKey> {
    let text = std::str::from_utf8(bytes).map_err(|_| CorruptKey::NotText)?;
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(CorruptKey::WrongHeader);
    }
    let hex = lines.next().ok_or(CorruptKey::MissingKeyLine)?.trim();
    let digits = hex.chars().count();
    if digits != 64 {
        return Err(CorruptKey::WrongLength { digits });
    }
    let nibbles = hex
        .chars()
        .map(|c| c.to_digit(16).map(|d| d as u8))
        .collect::<Option<Vec<u8>>>()
        .ok_or(CorruptKey::NotHex)?;
    let mut secret = [0u8; 32];
    for (byte, pair) in secret.iter_mut().zip(nibbles.chunks_exact(2)) {
        *byte = (pair[0] << 4) | pair[1];
    }
    Ok(SigningKey::from_bytes(&secret))
}

/// Writes the key to a private temporary file and renames it into place, so a crash never
/// leaves a half-written key behind.
fn write_new(path: &Path, key: &SigningKey) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let hex: String = key.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        writeln!(file, "{HEADER}\n{hex}")?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_file_gives_the_same_peer_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("identity.key");
        let first = load_or_create(&path).expect("create");
        let second = load_or_create(&path).expect("load");
        assert_eq!(first.peer_id, second.peer_id);
        assert!(
            first.peer_id.to_base58().starts_with("12D3Koo"),
            "{}",
            first.peer_id
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("identity.key");
        load_or_create(&path).expect("create");
        let mode = fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_and_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("identity.key");
        fs::write(&path, b"not a key").expect("write");
        let error = load_or_create(&path).expect_err("corrupt");
        assert!(matches!(error, IdentityError::Corrupt { .. }));
        assert!(error.to_string().contains("left as it is"), "{error}");
        assert_eq!(fs::read(&path).expect("read"), b"not a key");
    }

    /// A key line whose byte length is right but whose characters are not ASCII once made
    /// the parser slice inside a character and panic.
    #[test]
    fn a_non_ascii_key_file_is_a_clear_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("identity.key");
        let key_line = format!("a{}b", "é".repeat(31)); // 64 bytes, 33 characters
        assert_eq!(key_line.len(), 64);
        let contents = format!("{HEADER}\n{key_line}\n");
        fs::write(&path, &contents).expect("write");
        let error = load_or_create(&path).expect_err("corrupt");
        assert!(
            matches!(
                error,
                IdentityError::Corrupt {
                    reason: CorruptKey::WrongLength { digits: 33 },
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("left as it is"), "{error}");
        assert_eq!(fs::read_to_string(&path).expect("read"), contents);

        let all_wide = format!("{HEADER}\n{}\n", "é".repeat(64));
        fs::write(&path, &all_wide).expect("write");
        let error = load_or_create(&path).expect_err("corrupt");
        assert!(error.to_string().contains("not hexadecimal"), "{error}");
    }

    #[test]
    fn each_way_a_key_file_is_wrong_has_its_reason() {
        let good = "ab".repeat(32);
        let cases: [(Vec<u8>, CorruptKey); 5] = [
            (vec![0xff, 0xfe, 0x00], CorruptKey::NotText),
            (
                format!("other header\n{good}").into_bytes(),
                CorruptKey::WrongHeader,
            ),
            (HEADER.as_bytes().to_vec(), CorruptKey::MissingKeyLine),
            (
                format!("{HEADER}\nabc").into_bytes(),
                CorruptKey::WrongLength { digits: 3 },
            ),
            (
                format!("{HEADER}\n{}zz", "ab".repeat(31)).into_bytes(),
                CorruptKey::NotHex,
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(parse(&bytes).err(), Some(expected.clone()), "{expected}");
        }
        let key = parse(format!("{HEADER}\n{good}\n").as_bytes()).expect("valid");
        assert_eq!(key.to_bytes(), [0xab; 32]);
    }
}
