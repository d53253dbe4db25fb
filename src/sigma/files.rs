//! The rule files: finding them under the rule paths, and parsing them, on every core when
//! there are many (SigmaHQ's Windows corpus is 2,407 files; parsing them one by one was 0.2 s
//! of a 0.5 s load).

use std::path::{Path, PathBuf};

use super::{LoadError, LoadErrorKind, LoadOptions, Loc, Rule, is_rule_file, parse_text};

/// Every rule file under `paths`, sorted; a path that is a file is taken as given.
/// Directories are followed through symbolic links, but a link that leads back to a directory
/// already being walked (a loop, which would load its rules again and again) is an error
/// naming the link, and a file reached twice (through a link, or a hard link) is listed once.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut Vec::new(), &mut out)?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(LoadError {
                declared: Vec::new(),
                file: p.clone(),
                loc: Loc::default(),
                rule: None,
                kind: LoadErrorKind::Io("no such file or directory".into()),
            });
        }
    }
    out.sort();
    out.dedup();
    // The same file under two names (a link to a file, or to a directory walked elsewhere).
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(FileId::of(p)));
    Ok(out)
}

/// What makes two paths one file.
#[derive(Hash, PartialEq, Eq)]
enum FileId {
    /// Its device and inode: one `stat` (resolving the whole path, as `canonicalize` did
    /// component by component, cost a `lstat` per directory of it for every file).
    #[cfg(unix)]
    Inode(u64, u64),
    /// Its canonical path, where there are no inodes or the file cannot be read.
    Path(PathBuf),
}

impl FileId {
    fn of(p: &Path) -> FileId {
        #[cfg(unix)]
        if let Ok(m) = std::fs::metadata(p) {
            use std::os::unix::fs::MetadataExt;
            return FileId::Inode(m.dev(), m.ino());
        }
        FileId::Path(std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()))
    }
}

/// Most directories one walk enters: a tree of links that never loops can still fan out.
const MAX_DIRECTORIES: usize = 10_000;

fn walk(dir: &Path, stack: &mut Vec<PathBuf>, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let error = |kind: LoadErrorKind| LoadError {
        declared: Vec::new(),
        file: dir.to_path_buf(),
        loc: Loc::default(),
        rule: None,
        kind,
    };
    let io = |e: std::io::Error| error(LoadErrorKind::Io(e.to_string()));
    let real = std::fs::canonicalize(dir).map_err(io)?;
    if stack.contains(&real) {
        return Err(error(LoadErrorKind::Limit(format!(
            "a symbolic link loop: this directory is {}, which is already being walked",
            real.display()
        ))));
    }
    if out.len() + stack.len() > MAX_DIRECTORIES {
        return Err(error(LoadErrorKind::Limit(format!(
            "more than {MAX_DIRECTORIES} directories and files under the rule paths"
        ))));
    }
    // The directory's own listing says what each entry is (no `stat` per file: 2,407 of them
    // took milliseconds); only a symbolic link is followed to see where it leads.
    let mut entries: Vec<(PathBuf, bool)> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| {
            let e = e.ok()?;
            let p = e.path();
            let is_dir = match e.file_type() {
                Ok(t) if !t.is_symlink() => t.is_dir(),
                _ => p.is_dir(),
            };
            Some((p, is_dir))
        })
        .collect();
    entries.sort();
    stack.push(real);
    for (p, is_dir) in entries {
        if is_dir {
            walk(&p, stack, out)?;
        } else if is_rule_file(&p) {
            out.push(p);
        }
    }
    stack.pop();
    Ok(())
}

/// Parses the rules of one file; errors are appended to `errors`.
pub fn parse_file(
    path: &Path,
    opts: &LoadOptions,
    rules: &mut Vec<Rule>,
    errors: &mut Vec<LoadError>,
) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(LoadError {
                declared: Vec::new(),
                file: path.to_path_buf(),
                loc: Loc::default(),
                rule: None,
                kind: LoadErrorKind::Io(e.to_string()),
            });
            return;
        }
    };
    parse_text(path, &text, opts, rules, errors);
}

/// Fewest files per parsing thread: below it a thread costs more than it saves.
const FILES_PER_THREAD: usize = 64;

/// Parses every file of `files` on every core: the rules and errors come out in file order,
/// exactly as [`parse_file`] one file after another gives them.
pub fn parse_files(files: &[PathBuf], opts: &LoadOptions) -> (Vec<Rule>, Vec<LoadError>) {
    let parsed = crate::cores::map_in_order(files, FILES_PER_THREAD, |f| {
        let (mut rules, mut errors) = (Vec::new(), Vec::new());
        parse_file(f, opts, &mut rules, &mut errors);
        (rules, errors)
    });
    let (mut rules, mut errors) = (Vec::new(), Vec::new());
    for (r, e) in parsed {
        rules.extend(r);
        errors.extend(e);
    }
    (rules, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file reached under several names (a link to it, a link to its directory, a hard
    /// link) is listed once, under its first name in sorted order; a linked directory is
    /// walked even though its listing entry is a link.
    #[cfg(unix)]
    #[test]
    fn a_file_under_several_names_is_listed_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).expect("mkdir");
        std::fs::write(root.join("a.yml"), "title: a\n").expect("write");
        std::fs::write(root.join("sub/b.yml"), "title: b\n").expect("write");
        std::os::unix::fs::symlink(root.join("a.yml"), root.join("link-to-a.yml")).expect("ln");
        std::os::unix::fs::symlink(root.join("sub"), root.join("dirlink")).expect("ln");
        std::fs::hard_link(root.join("sub/b.yml"), root.join("hard.yml")).expect("ln");
        let files = collect_files(&[root.to_path_buf(), root.join("sub/b.yml")]).expect("files");
        assert_eq!(files, vec![root.join("a.yml"), root.join("dirlink/b.yml")]);
    }

    /// Enough files for several parsing threads, some broken: the rules and the errors come
    /// out in the order one-by-one parsing gives them.
    #[test]
    fn parsing_on_every_core_keeps_file_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        for i in 0..(FILES_PER_THREAD * 3 + 5) {
            let text = if i % 17 == 3 {
                format!("title: broken {i}\ndetection: [unclosed\n")
            } else {
                format!(
                    "title: rule {i}\nlogsource:\n  product: aws\ndetection:\n  sel:\n    eventName: E{i}\n  condition: sel\n"
                )
            };
            std::fs::write(dir.path().join(format!("r{i:04}.yml")), text).expect("write");
        }
        let files = collect_files(&[dir.path().to_path_buf()]).expect("files");
        let opts = LoadOptions::default();
        let (mut one_rules, mut one_errors) = (Vec::new(), Vec::new());
        for f in &files {
            parse_file(f, &opts, &mut one_rules, &mut one_errors);
        }
        let (rules, errors) = parse_files(&files, &opts);
        let titles = |r: &[Rule]| r.iter().map(|r| r.meta.title.clone()).collect::<Vec<_>>();
        assert_eq!(titles(&rules), titles(&one_rules));
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            one_errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        );
        assert_eq!(
            errors.len(),
            (0..FILES_PER_THREAD * 3 + 5)
                .filter(|i| i % 17 == 3)
                .count()
        );
    }
}
