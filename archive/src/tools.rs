//! What other tools need to read archives in place: archive inputs expanded into one virtual
//! path per `.wandb` member, `<archive>.tar.zst:<member name>`, and the bytes behind such a
//! path.
//!
//! `wandb-inspect runs.tar.zst` reads every run's record files, `runs.tar.zst:RUN` (a run folder
//! name or run id) one run's; each shows as `runs.tar.zst:<run folder>/<file>.wandb`.
//! `wandb-sync` scans a run's records in place ([`scan_member`]) and keeps its per-run state in
//! [`state_dir`].

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::read::{Archive, Member, parse_spec};

/// One input after expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expanded {
    /// Not an archive: resolve it by the ordinary input rules.
    Plain(PathBuf),
    /// The record files an archive input stands for, as virtual paths.
    Members(Vec<PathBuf>),
    /// An archive input that cannot be used.
    Problem {
        /// The input.
        input: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Expands each input that names an archive (`x.tar.zst`, `x.tar.zst:RUN`).
pub fn expand(inputs: &[PathBuf]) -> Vec<Expanded> {
    inputs
        .iter()
        .map(|input| {
            let Some((archive_path, run)) = parse_spec(input) else {
                return Expanded::Plain(input.clone());
            };
            let archive = match Archive::open(&archive_path) {
                Ok(archive) => archive,
                Err(error) => {
                    return Expanded::Problem {
                        input: input.clone(),
                        reason: error.to_string(),
                    };
                }
            };
            let members = archive.record_members(run.as_deref());
            if members.is_empty() {
                return Expanded::Problem {
                    input: input.clone(),
                    reason: match &run {
                        Some(run) => format!("the archive holds no run {run:?}"),
                        None => "the archive holds no .wandb file".into(),
                    },
                };
            }
            Expanded::Members(
                members
                    .iter()
                    .map(|m| virtual_path(&archive_path, &m.name))
                    .collect(),
            )
        })
        .collect()
}

/// `<archive>:<member>`.
pub fn virtual_path(archive: &Path, member: &str) -> PathBuf {
    let mut text = archive.as_os_str().to_owned();
    text.push(":");
    text.push(member);
    PathBuf::from(text)
}

/// The archive and member a virtual path names, when it is one (and no real file has that name).
pub fn split_virtual(path: &Path) -> Option<(PathBuf, String)> {
    if path.exists() {
        return None;
    }
    let text = path.to_str()?;
    let (archive, member) = text.rsplit_once(".tar.zst:")?;
    let archive = PathBuf::from(format!("{archive}.tar.zst"));
    (archive.is_file() && member.contains('/')).then(|| (archive, member.to_string()))
}

/// The bytes of the member a virtual path names: `None` when `path` is not a virtual path,
/// `Some(Err)` when the archive or member cannot be read (damage included).
pub fn read_virtual(path: &Path) -> Option<Result<Vec<u8>, String>> {
    let (archive_path, name) = split_virtual(path)?;
    Some((|| {
        let archive = Archive::open(&archive_path).map_err(|e| e.to_string())?;
        let member = archive
            .members()
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| format!("{}: no member {name:?}", archive_path.display()))?;
        archive
            .read_member(member)
            .map_err(|e| format!("{}: {name}: {e}", archive_path.display()))
    })())
}

/// The folder next to an archive where tools keep per-run state: `runs.tar.zst.sync/`.
pub fn state_dir(archive: &Path) -> PathBuf {
    let mut text = archive.as_os_str().to_owned();
    text.push(".sync");
    PathBuf::from(text)
}

/// What [`scan_member`] hands on, in file order.
#[derive(Debug)]
pub enum MemberItem<'a> {
    /// A record or a damaged span of the `.wandb` file, as [`wandb_format::Scanner`] yields
    /// them (offsets are offsets in the `.wandb` file).
    Item(wandb_format::ScanItem<'a>),
    /// Bytes of the `.wandb` file lost to damage in the archive (read as zeros, so the scan goes
    /// on at the next intact record after them).
    Lost {
        /// Offset in the `.wandb` file.
        offset: u64,
        /// Bytes lost.
        length: u64,
        /// What happened, naming the frame or tar offset.
        reason: String,
    },
}

thread_local! {
    /// The window buffer of the last [`scan_member`] on this thread, reused by the next.
    static SCAN_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A window buffer taken from [`SCAN_BUFFER`] and given back (emptied) when dropped.
struct ScanBuffer(Vec<u8>);

impl ScanBuffer {
    fn take() -> ScanBuffer {
        ScanBuffer(
            SCAN_BUFFER
                .try_with(|b| std::mem::take(&mut *b.borrow_mut()))
                .unwrap_or_default(),
        )
    }
}

impl Drop for ScanBuffer {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        buf.clear();
        let _ = SCAN_BUFFER.try_with(|b| *b.borrow_mut() = buf);
    }
}

/// Bytes of a member decompressed at once by [`scan_member`] (one frame of an archive we write).
pub const SCAN_WINDOW: u64 = crate::pack::FRAME_MAX as u64;

/// Scans the records of the `.wandb` member `member` in place, decompressing only the frames
/// that hold it, a window of about [`SCAN_WINDOW`] bytes at a time: memory holds one frame and
/// the bytes from the first unfinished record on, never the whole member. Items reach `f` in
/// file order, exactly as one scan of the unpacked file gives them; `f` returns `Ok(false)` to
/// stop. A part of the member lost to archive damage is handed on as [`MemberItem::Lost`] and
/// scanned as zeros.
///
/// # Errors
///
/// [`Error::Member`] when the member does not start with a `.wandb` header or when `recovery`
/// rejects some damage; whatever `f` returns.
pub fn scan_member<E: From<Error>>(
    archive: &Archive,
    member: &Member,
    recovery: wandb_format::Recovery,
    f: impl FnMut(MemberItem<'_>) -> Result<bool, E>,
) -> Result<(), E> {
    scan_member_windowed(archive, member, recovery, SCAN_WINDOW, f)
}

/// [`scan_member`] decompressing `window` bytes at a time (at least 1; tests use small windows
/// to cut records at every place).
///
/// # Errors
///
/// As [`scan_member`].
pub fn scan_member_windowed<E: From<Error>>(
    archive: &Archive,
    member: &Member,
    recovery: wandb_format::Recovery,
    window: u64,
    mut f: impl FnMut(MemberItem<'_>) -> Result<bool, E>,
) -> Result<(), E> {
    use wandb_format::{FILE_HEADER, FILE_HEADER_LEN, Scanner};
    let size = member.size;
    let member_error = |offset: u64, reason: String| Error::Member {
        member: member.name.clone(),
        offset,
        reason,
    };
    let mut buf = ScanBuffer::take();
    let buf = &mut buf.0;
    let mut buf_start = 0u64;
    let mut next = FILE_HEADER_LEN;
    let mut read = 0u64;
    let base_window = window.max(1);
    let mut window = base_window;
    loop {
        let want = window.min(size - read);
        let holes = archive.read_range_lossy(member.data_offset + read, want, &mut |bytes| {
            buf.extend_from_slice(bytes);
        });
        for (offset, length, reason) in holes {
            let offset = offset.saturating_sub(member.data_offset);
            if !f(MemberItem::Lost {
                offset,
                length,
                reason,
            })? {
                return Ok(());
            }
        }
        if read == 0 && !buf.starts_with(&FILE_HEADER) {
            let found: Vec<String> = buf.iter().take(7).map(|b| format!("{b:02x}")).collect();
            return Err(member_error(
                member.data_offset,
                format!("not a .wandb log: it starts with {}", found.join(" ")),
            )
            .into());
        }
        read += want;
        let is_final = read >= size;
        let mut scanner = Scanner::new(buf, buf_start, next, recovery);
        if !is_final {
            scanner = scanner.growing();
        }
        for item in scanner.by_ref() {
            match item {
                Ok(item) => {
                    if !f(MemberItem::Item(item))? {
                        return Ok(());
                    }
                }
                Err(damage) => {
                    return Err(member_error(
                        member.data_offset + damage.offset,
                        format!(
                            "damage at offset {} of the .wandb file: {}",
                            damage.offset, damage.reason
                        ),
                    )
                    .into());
                }
            }
        }
        if is_final {
            return Ok(());
        }
        let resume = scanner.resume_offset();
        let consumed = usize::try_from(resume.saturating_sub(buf_start))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        buf.drain(..consumed);
        buf_start += consumed as u64;
        next = resume;
        // A record larger than the window: read more at once rather than scan it again and again.
        window = if consumed == 0 {
            window.saturating_mul(2)
        } else {
            base_window
        };
    }
}

/// For a run unpacked by `wandb-archive unpack`: the copy of the artifact file that
/// was staged at `local_path` when the run was packed, if the archive holds one. A tool that
/// reads an artifact's `local_path` looks here when that path does not exist on this machine.
pub fn staged_copy(run_dir: &Path, local_path: &str) -> Option<PathBuf> {
    let path = run_dir.join(crate::pack::staged_name(local_path));
    path.is_file().then_some(path)
}
