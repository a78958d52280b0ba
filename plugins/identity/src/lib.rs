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

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "the identity key file {path} is corrupt ({reason}). It was left as it is. \
         Restore it from a backup, or move it away to start with a new identity \
         (your peer ID, and every invite you shared, will change)"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot read or write the identity key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An identity: the signing key and the peer id derived from it.
#[derive(Clone)]
pub struct Identity {
    pub key: SigningKey,
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

fn parse(bytes: &[u8]) -> Result<SigningKey, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "it is not text".to_owned())?;
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(format!("its first line is not `{HEADER}`"));
    }
    let hex = lines.next().ok_or("the key line is missing")?.trim();
    if hex.len() != 64 {
        return Err(format!(
            "the key has {} hex digits instead of 64",
            hex.len()
        ));
    }
    let mut secret = [0u8; 32];
    for (i, byte) in secret.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| "the key is not hexadecimal".to_owned())?;
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
}
