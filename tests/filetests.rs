//! File tests, as Cranelift's: each `tests/filetests/*.ir` is a program followed by the text
//! every stage it names prints, pasted into the file as comments, so a change in what the
//! parser, the printer or a transform emits shows up as a reviewable diff of that file.
//!
//! A file is, in order:
//!
//! - comment lines saying what the program is for, and one `# run: WORDS` line per stage,
//!   where `WORDS` are `-t` words as `traceform dump` takes them, applied in order
//!   (`# run: grad jvp` is `dump f.ir -t grad -t jvp`, `# run: transpose:1` transposes with
//!   respect to input 1);
//! - the program (one `func`);
//! - the expectations, generated: for the stage `input` (the program as the printer prints it)
//!   and then for each `# run:` line in order, a line `# expect: WORDS` followed by the printed
//!   function, each line prefixed by `# ` (`#` alone for an empty line), or by
//!   `# error at LINE:COL: MESSAGE` when the transform fails
//!   (`# error: MESSAGE` when the error has no place in the file).
//!
//! Everything from the first `# expect:` line to the end of the file is generated; the whole
//! file stays a program the parser reads (the expectations are comments). The runner also
//! checks, for every stage that succeeds, that the function verifies, that it reads back from
//! its printed text as the same function (`parse(print(f)) == f`), and that the interpreter
//! runs it on inputs of its parameter types with results of its declared output types. Files
//! whose program returns one float scalar must run `grad` and `hvp` stages; every file runs a
//! `jvp` and a `vjp` stage.
//!
//! After an intended change, regenerate and review:
//!
//! ```sh
//! UPDATE_EXPECT=1 cargo test --test filetests
//! git diff tests/filetests
//! ```

use std::path::{Path, PathBuf};
use std::str::FromStr;

use ndarray::{ArrayD, IxDyn};
use traceform::ir::{parse_func, print_func, verify_func, Type};
use traceform::transform::{apply_all, TransformSpec};
use traceform::{eval, DType, Func, Value};

const RUN: &str = "# run: ";
const EXPECT: &str = "# expect: ";

fn files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filetests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ir"))
        .collect();
    files.sort();
    files
}

/// A file split into its source (header and program) and its generated expectations.
struct FileTest {
    source: String,
    stages: Vec<String>,
}

fn read(text: &str) -> FileTest {
    let end = text
        .match_indices(EXPECT)
        .find(|(i, _)| *i == 0 || text.as_bytes()[i - 1] == b'\n')
        .map_or(text.len(), |(i, _)| i);
    let source = text[..end].trim_end().to_string();
    let stages = source
        .lines()
        .filter_map(|line| line.strip_prefix(RUN))
        .map(|words| words.trim().to_string())
        .collect();
    FileTest { source, stages }
}

/// A value of type `ty` with varied, deterministic elements.
fn input(ty: &Type, seed: usize) -> Value {
    let shape = IxDyn(&ty.shape);
    let n = ty.num_elements();
    let float = |k: usize| {
        let magnitude = 0.35 + 0.17 * ((k + seed) % 7) as f64;
        if (k + seed) % 3 == 2 {
            -magnitude
        } else {
            magnitude
        }
    };
    match ty.dtype {
        DType::F32 => Value::F32(
            ArrayD::from_shape_vec(shape, (0..n).map(|k| float(k) as f32).collect()).unwrap(),
        ),
        DType::F64 => {
            Value::F64(ArrayD::from_shape_vec(shape, (0..n).map(float).collect()).unwrap())
        }
        DType::I32 => Value::I32(
            ArrayD::from_shape_vec(shape, (0..n).map(|k| ((k + seed) % 5) as i32 - 2).collect())
                .unwrap(),
        ),
        DType::Bool => Value::Bool(
            ArrayD::from_shape_vec(shape, (0..n).map(|k| (k + seed) % 2 == 0).collect()).unwrap(),
        ),
    }
}

/// What the stage `words` prints for `func`, after checking what a transformed function must
/// satisfy; `Err` describes a broken invariant (a test failure, not an expected error).
fn run_stage(func: &Func, words: &str) -> Result<String, String> {
    let g = if words == "input" {
        func.clone()
    } else {
        let specs = words
            .split_whitespace()
            .map(TransformSpec::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        match apply_all(func.clone(), &specs) {
            Ok(g) => g,
            Err(e) => {
                return Ok(match e.text_location() {
                    Some((line, col)) => format!("error at {line}:{col}: {e}"),
                    None => format!("error: {e}"),
                })
            }
        }
    };
    verify_func(&g).map_err(|e| format!("does not verify: {e}"))?;
    let printed = print_func(&g);
    let reparsed =
        parse_func(&printed).map_err(|e| format!("its printed text does not parse: {e}"))?;
    if reparsed != g {
        return Err(format!("parse(print(f)) differs from f:\n{printed}"));
    }
    let args: Vec<Value> = g
        .param_types()
        .iter()
        .enumerate()
        .map(|(i, ty)| input(ty, i))
        .collect();
    let results = eval(&g, &args).map_err(|e| format!("does not run: {e}"))?;
    let types: Vec<Type> = results.iter().map(Value::ty).collect();
    if types != g.output_types() {
        return Err(format!(
            "returns {types:?}, declared {:?}",
            g.output_types()
        ));
    }
    Ok(printed)
}

/// The stages a file must run, by its program's signature.
fn check_stage_list(func: &Func, stages: &[String]) -> Result<(), String> {
    let outputs = func.output_types();
    let scalar = outputs.len() == 1 && outputs[0].rank() == 0 && outputs[0].dtype.is_float();
    let mut required = vec!["jvp", "vjp"];
    if scalar {
        required.extend(["grad", "hvp"]);
    }
    for name in required {
        let runs = stages.iter().any(|s| {
            s.split_whitespace()
                .next()
                .is_some_and(|w| w.split(':').next() == Some(name))
        });
        if !runs {
            return Err(format!("no `# run: {name}` stage"));
        }
    }
    Ok(())
}

/// The file as it should be: its source followed by the expectations of every stage.
fn render(test: &FileTest, func: &Func) -> Result<String, String> {
    let mut text = test.source.clone();
    text.push('\n');
    for words in std::iter::once("input").chain(test.stages.iter().map(String::as_str)) {
        let printed = run_stage(func, words).map_err(|e| format!("stage `{words}`: {e}"))?;
        text.push('\n');
        text.push_str(EXPECT);
        text.push_str(words);
        text.push('\n');
        for line in printed.lines() {
            text.push('#');
            if !line.is_empty() {
                text.push(' ');
                text.push_str(line);
            }
            text.push('\n');
        }
    }
    Ok(text)
}

/// The first stage whose expectation differs, for the failure message.
fn first_difference(want: &str, got: &str) -> String {
    let blocks = |t: &str| -> Vec<String> {
        t.split(&format!("\n{EXPECT}"))
            .enumerate()
            .map(|(i, b)| {
                if i == 0 {
                    b.to_string()
                } else {
                    format!("{EXPECT}{b}")
                }
            })
            .collect()
    };
    let (want, got) = (blocks(want), blocks(got));
    for (i, g) in got.iter().enumerate() {
        match want.get(i) {
            Some(w) if w == g => {}
            Some(w) => return format!("--- in the file:\n{w}\n--- generated:\n{g}"),
            None => return format!("--- missing from the file:\n{g}"),
        }
    }
    format!(
        "--- in the file but not generated:\n{}",
        want[got.len()..].join("\n")
    )
}

#[test]
fn filetests() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let files = files();
    assert!(
        files.len() >= 12,
        "expected the file tests in tests/filetests"
    );
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let test = read(&text);
        let func = match parse_func(&test.source) {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        if let Err(e) = check_stage_list(&func, &test.stages) {
            failures.push(format!("{name}: {e}"));
            continue;
        }
        let want = match render(&test, &func) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        if want == text {
            continue;
        }
        if update {
            std::fs::write(path, &want).unwrap();
        } else {
            failures.push(format!(
                "{name}: the output differs from the expectations (rerun with UPDATE_EXPECT=1 to bless it)\n{}",
                first_difference(&text, &want)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The runner's own pieces: the split at the first `# expect:` line and the stage list.
#[test]
fn a_file_splits_at_its_first_expectation() {
    let text = "# about\n# run: jvp\n# run: grad jvp\nfunc f(x: f32[]) -> f32[] {\n  return x\n}\n\n# expect: input\n# func\n";
    let test = read(text);
    assert!(test.source.ends_with('}'), "{}", test.source);
    assert_eq!(test.stages, ["jvp", "grad jvp"]);
    let func = parse_func(&test.source).unwrap();
    assert_eq!(
        check_stage_list(&func, &test.stages).unwrap_err(),
        "no `# run: vjp` stage"
    );
}
