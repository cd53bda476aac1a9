//! Files mqlite writes for the user beside the database (EXPORT, BACKUP):
//! created private, and never one of the database's own files.

use std::path::Path;

use crate::{Error, FileProblem, Result};

/// Refuses `target` when it names the database file or one of SQLite's
/// files beside it (`-wal`, `-shm`, `-journal`), by name (after resolving
/// `.`, `..` and symlinks of the directory) or by identity (a symlink or a
/// hard link to one of them).
pub(crate) fn refuse_database_files(db: &Path, target: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let refuse = || {
        Err(Error::OutputFile {
            path: target.to_path_buf(),
            problem: FileProblem::DatabaseFile,
        })
    };
    let db = db.canonicalize()?;
    let mut own = vec![db.clone()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.clone().into_os_string();
        name.push(suffix);
        own.push(name.into());
    }
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let (Ok(dir), Some(name)) = (parent.canonicalize(), target.file_name())
        && own.contains(&dir.join(name))
    {
        return refuse();
    }
    if let Ok(meta) = std::fs::metadata(target) {
        for path in &own {
            if let Ok(m) = std::fs::metadata(path)
                && (m.dev(), m.ino()) == (meta.dev(), meta.ino())
            {
                return refuse();
            }
        }
    }
    Ok(())
}

/// Creates a new file with mode 0600 (the mode is set again after
/// creation, so no umask widens or narrows it); fails if the path exists.
pub(crate) fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}
