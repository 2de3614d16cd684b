//! A folder on the server's own disk. Keys are paths relative to the folder, with `/`
//! separators, so a document keeps its key when the folder moves. Hidden files and folders
//! (names starting with `.`) are skipped, and symbolic links are not followed, so a link cannot
//! pull in files from outside the folder.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use tokio::io::AsyncReadExt;

use super::{Connector, ConnectorError, SourceItem};

#[derive(Debug, Clone)]
pub struct FolderConnector {
    root: PathBuf,
}

impl FolderConnector {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    async fn walk(&self) -> Result<Vec<SourceItem>, ConnectorError> {
        let meta = tokio::fs::metadata(&self.root).await.map_err(|e| {
            ConnectorError::Config(format!("{} cannot be read: {e}", self.root.display()))
        })?;
        if !meta.is_dir() {
            return Err(ConnectorError::Config(format!(
                "{} is not a folder",
                self.root.display()
            )));
        }
        let mut items = Vec::new();
        let mut pending = vec![PathBuf::new()];
        while let Some(relative) = pending.pop() {
            let folder = self.root.join(&relative);
            let mut entries = tokio::fs::read_dir(&folder)
                .await
                .map_err(|e| ConnectorError::Unreachable(format!("{}: {e}", folder.display())))?;
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(|e| ConnectorError::Unreachable(format!("{}: {e}", folder.display())))?
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                // `file_type` does not follow links, so a link is neither a file nor a folder.
                let file_type = entry.file_type().await.map_err(|e| {
                    ConnectorError::Unreachable(format!("{}: {e}", entry.path().display()))
                })?;
                let child = relative.join(&name);
                if file_type.is_dir() {
                    pending.push(child);
                } else if file_type.is_file() {
                    let meta = entry.metadata().await.map_err(|e| {
                        ConnectorError::Unreachable(format!("{}: {e}", entry.path().display()))
                    })?;
                    let version = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos()));
                    items.push(SourceItem {
                        key: key_of(&child),
                        name,
                        size: Some(meta.len()),
                        version,
                        url: None,
                        acl: None,
                    });
                }
            }
        }
        items.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(items)
    }

    async fn read(&self, item: &SourceItem, max_bytes: u64) -> Result<Vec<u8>, ConnectorError> {
        if item
            .key
            .split('/')
            .any(|part| part == ".." || part.is_empty())
        {
            return Err(ConnectorError::Protocol(format!(
                "{} is not a key this folder gave",
                item.key
            )));
        }
        let path = self.root.join(&item.key);
        let file = tokio::fs::File::open(&path).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ConnectorError::Gone(item.key.clone())
            } else {
                ConnectorError::Unreachable(format!("{}: {e}", path.display()))
            }
        })?;
        self.opened_inside(&file, &item.key).await?;
        let mut bytes = Vec::new();
        // Read one byte past the limit so a file that grew since listing is caught too.
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| ConnectorError::Unreachable(format!("{}: {e}", path.display())))?;
        if bytes.len() as u64 > max_bytes {
            return Err(ConnectorError::TooLarge {
                key: item.key.clone(),
                size: item.size.unwrap_or(bytes.len() as u64),
                limit: max_bytes,
            });
        }
        Ok(bytes)
    }
}

impl FolderConnector {
    /// Refuses an opened file that is not a regular file inside the folder. Checked on the file
    /// already open, not on its name, so a link swapped in after listing (for the file or a
    /// folder above it) cannot lead outside between a check and the read. On Linux the open
    /// file's own path comes from `/proc/self/fd`; elsewhere the name is resolved just after
    /// opening, which narrows the race but cannot close it.
    async fn opened_inside(&self, file: &tokio::fs::File, key: &str) -> Result<(), ConnectorError> {
        let outside = || ConnectorError::Denied(format!("{key} leads outside the folder"));
        let meta = file
            .metadata()
            .await
            .map_err(|e| ConnectorError::Unreachable(format!("{key}: {e}")))?;
        if !meta.is_file() {
            return Err(outside());
        }
        let root = tokio::fs::canonicalize(&self.root)
            .await
            .map_err(|e| ConnectorError::Unreachable(format!("{}: {e}", self.root.display())))?;
        #[cfg(target_os = "linux")]
        let real = {
            use std::os::fd::AsRawFd;
            tokio::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).await
        };
        #[cfg(not(target_os = "linux"))]
        let real = tokio::fs::canonicalize(self.root.join(key)).await;
        let real = real.map_err(|e| ConnectorError::Unreachable(format!("{key}: {e}")))?;
        if real.starts_with(&root) {
            Ok(())
        } else {
            Err(outside())
        }
    }
}

fn key_of(relative: &Path) -> String {
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

impl Connector for FolderConnector {
    fn kind(&self) -> &'static str {
        "folder"
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<SourceItem>, ConnectorError>> {
        Box::pin(self.walk())
    }

    fn fetch<'a>(
        &'a self,
        item: &'a SourceItem,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, ConnectorError>> {
        Box::pin(self.read(item, max_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_nested_files_with_relative_keys_and_skips_hidden_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("hr/leave")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join(".git")).expect("mkdir");
        std::fs::write(dir.path().join("a.md"), "# A").expect("write");
        std::fs::write(dir.path().join("hr/leave/b.txt"), "b").expect("write");
        std::fs::write(dir.path().join(".git/config"), "x").expect("write");
        std::fs::write(dir.path().join(".hidden.txt"), "x").expect("write");
        let folder = FolderConnector::new(dir.path());
        let items = folder.list().await.expect("list");
        let keys: Vec<_> = items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["a.md", "hr/leave/b.txt"]);
        assert_eq!(items[1].size, Some(1));
        let bytes = folder.fetch(&items[0], 100).await.expect("fetch");
        assert_eq!(bytes, b"# A");
    }

    #[tokio::test]
    async fn refuses_files_over_the_limit_and_keys_that_climb_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("big.txt"), vec![b'x'; 101]).expect("write");
        let folder = FolderConnector::new(dir.path());
        let items = folder.list().await.expect("list");
        let error = folder.fetch(&items[0], 100).await.expect_err("too large");
        assert!(
            matches!(error, ConnectorError::TooLarge { limit: 100, .. }),
            "{error}"
        );
        let climbing = SourceItem {
            key: "../etc/passwd".into(),
            ..items[0].clone()
        };
        let error = folder.fetch(&climbing, 100).await.expect_err("climbs out");
        assert!(matches!(error, ConnectorError::Protocol(_)), "{error}");
    }

    /// A file, or a folder above it, swapped for a link to somewhere else between listing and
    /// reading: what the listing did not follow, reading must not follow either.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_link_swapped_in_after_listing_is_not_followed_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("share");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("hr")).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(root.join("a.txt"), "public").expect("write");
        std::fs::write(root.join("hr/b.txt"), "public").expect("write");
        std::fs::write(outside.join("a.txt"), "secret").expect("write");
        std::fs::write(outside.join("b.txt"), "secret").expect("write");
        let folder = FolderConnector::new(&root);
        let items = folder.list().await.expect("list");
        assert_eq!(items.len(), 2);

        std::fs::remove_file(root.join("a.txt")).expect("rm");
        std::os::unix::fs::symlink(outside.join("a.txt"), root.join("a.txt")).expect("link");
        std::fs::remove_dir_all(root.join("hr")).expect("rm");
        std::os::unix::fs::symlink(&outside, root.join("hr")).expect("link");
        for item in &items {
            let read = folder.fetch(item, 100).await;
            assert!(
                !matches!(&read, Ok(bytes) if bytes.as_slice() == b"secret"),
                "{} was read from outside the folder",
                item.key
            );
            let error = read.expect_err("refused");
            assert!(error.to_string().contains("outside"), "{error}");
        }
    }
}
