//! The data directory is this user's only: the directory 0700, the key and the database
//! 0600. Modes of an existing directory or file are fixed when it is opened.

use std::fs::{DirBuilder, Permissions};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use crate::StorageError;

/// The data directory's mode: only its owner may list or enter it.
pub(crate) const DIR_MODE: u32 = 0o700;
/// The key's and the database's mode: only their owner may read or write them.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and its missing parents, with the usual mode) and makes it 0700.
pub(crate) fn create_dir(dir: &Path) -> Result<(), StorageError> {
    let failed = |source| StorageError::DataDir {
        path: dir.to_owned(),
        source,
    };
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    match DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(e) => return Err(failed(e)),
    }
    set_mode(dir, DIR_MODE)
}

/// Makes an existing file 0600.
pub(crate) fn restrict_file(path: &Path) -> Result<(), StorageError> {
    set_mode(path, FILE_MODE)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), StorageError> {
    let current = std::fs::metadata(path)
        .map_err(|source| StorageError::Permissions {
            path: path.to_owned(),
            source,
        })?
        .permissions()
        .mode();
    if current & 0o777 == mode {
        return Ok(());
    }
    std::fs::set_permissions(path, Permissions::from_mode(mode)).map_err(|source| {
        StorageError::Permissions {
            path: path.to_owned(),
            source,
        }
    })
}
