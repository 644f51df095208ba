//! The `traceform` command line, exactly as `shared/spec/cli.md` defines it: `dump`, `run` and
//! `bench`, each over the pipeline parse -> transform -> (simplify -> compile) -> run.
//!
//! Every failure is a `CliError`: `User` (exit 2) for anything wrong with what the user gave,
//! `Internal` (exit 1) for a bug. `main` prints it as one `error: ...` line.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use traceform_ir::{parse_module, to_dot, write_func, Func};
use traceform_jit::JitError;
use traceform_runtime::{eval_with_stats, EvalError, Value};

use crate::npy::{read_npy, write_npy};
use crate::transform::{apply_all, TransformSpec};
use traceform_transforms::{simplify, Limits, Report};

/// What went wrong, and whose fault it is.
#[derive(Debug)]
pub enum CliError {
    /// Bad input: exit status 2.
    User(String),
    /// A bug in traceform: exit status 1.
    Internal(String),
    /// Whoever read the output stopped reading (`| head`): stop quietly, exit status 0.
    OutputClosed,
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::User(_) => 2,
            CliError::Internal(_) => 1,
            CliError::OutputClosed => 0,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            CliError::User(m) | CliError::Internal(m) => m,
            CliError::OutputClosed => "",
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "traceform",
    version,
    about = "Trace, differentiate, simplify and run tensor programs written in the traceform text IR"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// The reference interpreter.
    Interp,
    /// The Cranelift JIT.
    Jit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Stage {
    /// The program as parsed.
    Input,
    /// After the `-t` transforms.
    Transformed,
    /// After simplification.
    Simplified,
    /// The compiled form: the JIT's fusion plan and the buffer of each value.
    Compiled,
    /// The Cranelift IR of the JIT's compiled functions, for debugging the code generator.
    Clif,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Dot,
}

/// The program every command starts from: a file and the transforms to apply to it.
#[derive(Args, Debug)]
pub struct ProgramArgs {
    /// A program in the text IR (docs/spec/ir-text.md); its first `func` is the entry.
    /// Sample programs: tests/data/conformance/*/f.ir, tests/data/workloads/*/f.ir,
    /// tests/filetests/*.ir.
    pub file: PathBuf,
    /// A transform to apply: jvp, vjp, grad, hvp (the spec's), or transpose, jacfwd, jacrev,
    /// hessian (extensions; see docs/transforms.md for their signatures), optionally followed
    /// by `:i,j,...`, the input positions to differentiate (default: every float input).
    /// `outputs:i,j,...` keeps only those outputs (and the work they need).
    /// Repeat to compose, in order: `-t grad -t jvp` is jvp(grad(f)).
    #[arg(short = 't', value_name = "T")]
    pub transforms: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the IR at a stage of the pipeline.
    Dump {
        #[command(flatten)]
        program: ProgramArgs,
        /// The stage to print. Default: the last stage the pipeline has for the transforms
        /// given (`simplified` with -t, `input` without).
        #[arg(long, value_enum)]
        stage: Option<Stage>,
        /// Print what simplification did (equations, estimated FLOPs and bytes moved before
        /// and after, stop reason, time) as `#` comment lines before the program.
        #[arg(long)]
        stats: bool,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Run the (transformed) entry function on .npy inputs.
    Run {
        #[command(flatten)]
        program: ProgramArgs,
        #[arg(long, value_enum, default_value = "jit")]
        backend: Backend,
        /// Run the transformed program as it is, without simplification.
        #[arg(long)]
        no_simplify: bool,
        /// Write outputs as DIR/out0.npy, DIR/out1.npy, ... instead of printing them.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// One .npy file per input of the (transformed) entry function, in signature order.
        inputs: Vec<PathBuf>,
    },
    /// Time the pipeline and steady-state calls, printing `key: value` lines.
    Bench {
        #[command(flatten)]
        program: ProgramArgs,
        #[arg(long, value_enum, default_value = "jit")]
        backend: Backend,
        /// Run the transformed program as it is, without simplification.
        #[arg(long)]
        no_simplify: bool,
        /// Keep calling for at least this long (milliseconds) before taking the median.
        #[arg(long, default_value_t = 1000, value_name = "MS")]
        min_time_ms: u64,
        /// One .npy file per input of the (transformed) entry function, in signature order.
        inputs: Vec<PathBuf>,
    },
}

/// Reads and parses `path`, returning its entry function. Errors carry `path:line:col`.
pub fn load_entry(path: &Path) -> Result<Func, CliError> {
    let shown = path.display();
    let bytes = fs::read(path).map_err(|e| CliError::User(format!("{shown}: cannot read: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::User(format!("{shown}:1:1: not a text file (invalid UTF-8)")))?;
    let module = parse_module(&text).map_err(|e| CliError::User(format!("{shown}:{e}")))?;
    Ok(module
        .funcs
        .into_iter()
        .next()
        .expect("a parsed module has a function"))
}

fn parse_transforms(words: &[String]) -> Result<Vec<TransformSpec>, CliError> {
    words
        .iter()
        .map(|w| w.parse::<TransformSpec>().map_err(CliError::User))
        .collect()
}

/// Parse, transform and (unless `no_simplify`) simplify: the program that `run` and `bench`
/// execute, and what simplification did.
fn build_simplified(
    path: &Path,
    transforms: &[String],
    no_simplify: bool,
) -> Result<(Func, Option<Report>), CliError> {
    let func = build(path, transforms)?;
    if no_simplify {
        return Ok((func, None));
    }
    let (simplified, report) = simplify(&func, &Limits::for_size(func.eqns.len()));
    Ok((simplified, Some(report)))
}

/// Parse and transform.
fn build(path: &Path, transforms: &[String]) -> Result<Func, CliError> {
    let specs = parse_transforms(transforms)?;
    let func = load_entry(path)?;
    apply_all(func, &specs).map_err(|e| {
        let message = match e.text_location() {
            Some((line, col)) => format!("{}:{line}:{col}: {e}", path.display()),
            None => format!("{}: {e}", path.display()),
        };
        if e.is_user_error() {
            CliError::User(message)
        } else {
            CliError::Internal(message)
        }
    })
}

/// A program ready to run on one backend.
enum Prepared<'a> {
    Interp(&'a Func),
    Jit(Box<traceform_jit::Executable>),
}

impl Prepared<'_> {
    fn new(func: &Func, backend: Backend) -> Result<Prepared<'_>, CliError> {
        Ok(match backend {
            Backend::Interp => Prepared::Interp(func),
            Backend::Jit => {
                Prepared::Jit(Box::new(traceform_jit::compile(func).map_err(jit_error)?))
            }
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Prepared::Interp(_) => "interp",
            Prepared::Jit(_) => "jit",
        }
    }

    /// Runs on `inputs`: the outputs and the peak of intermediate memory.
    fn run(&self, inputs: &[&Value]) -> Result<(Vec<Value>, usize), CliError> {
        match self {
            Prepared::Interp(func) => eval_with_stats(func, inputs)
                .map(|(outs, stats)| (outs, stats.peak_bytes))
                .map_err(eval_error),
            Prepared::Jit(exe) => exe
                .run(inputs)
                .map(|outs| (outs, exe.peak_bytes()))
                .map_err(jit_error),
        }
    }
}

fn jit_error(e: JitError) -> CliError {
    match e {
        JitError::Input(m) => CliError::User(m),
        e @ (JitError::Compile { .. } | JitError::Kernel { .. }) => {
            CliError::Internal(e.to_string())
        }
    }
}

fn load_inputs(func: &Func, paths: &[PathBuf]) -> Result<Vec<Value>, CliError> {
    let types = func.param_types();
    if paths.len() != types.len() {
        let sig: Vec<String> = func
            .params
            .iter()
            .map(|&p| format!("{}: {}", func.var_name(p), func.var_type(p)))
            .collect();
        return Err(CliError::User(format!(
            "`{}` takes {} input(s) ({}), given {} .npy file(s)",
            func.name,
            types.len(),
            sig.join(", "),
            paths.len()
        )));
    }
    let mut values = Vec::with_capacity(paths.len());
    for (i, (path, want)) in paths.iter().zip(&types).enumerate() {
        let v = read_npy(path).map_err(|e| CliError::User(format!("{}: {e}", path.display())))?;
        if &v.ty() != want {
            return Err(CliError::User(format!(
                "{}: input {i} (`{}`) must be {want}, but the file holds {}",
                path.display(),
                func.var_name(func.params[i]),
                v.ty()
            )));
        }
        values.push(v);
    }
    Ok(values)
}

fn eval_error(e: EvalError) -> CliError {
    match e {
        EvalError::Input(m) => CliError::User(m),
        e @ EvalError::Kernel { .. } => CliError::Internal(e.to_string()),
    }
}

/// Runs a command, writing its normal output to `out`.
pub fn run_command(cli: Cli, out: &mut dyn std::io::Write) -> Result<(), CliError> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::BrokenPipe => CliError::OutputClosed,
        _ => CliError::Internal(format!("cannot write output: {e}")),
    };
    match cli.command {
        Command::Dump {
            program: ProgramArgs { file, transforms },
            stage,
            stats,
            format,
        } => {
            let stage = stage.unwrap_or(if transforms.is_empty() {
                Stage::Input
            } else {
                Stage::Simplified
            });
            let (func, report) = match stage {
                Stage::Input => {
                    parse_transforms(&transforms)?;
                    (load_entry(&file)?, None)
                }
                Stage::Transformed => (build(&file, &transforms)?, None),
                Stage::Simplified => build_simplified(&file, &transforms, false)?,
                Stage::Compiled => {
                    if format == Format::Dot {
                        return Err(CliError::User(
                            "stage `compiled` prints the JIT's fusion plan as text only; use `--format text`".into(),
                        ));
                    }
                    let (func, report) = build_simplified(&file, &transforms, false)?;
                    let exe = traceform_jit::compile(&func).map_err(jit_error)?;
                    if stats {
                        if let Some(r) = &report {
                            for line in r.to_string().lines() {
                                writeln!(out, "# {line}").map_err(io)?;
                            }
                        }
                    }
                    return out.write_all(exe.describe().as_bytes()).map_err(io);
                }
                Stage::Clif => {
                    if format == Format::Dot {
                        return Err(CliError::User(
                            "stage `clif` prints Cranelift IR as text only; use `--format text`"
                                .into(),
                        ));
                    }
                    let (func, _) = build_simplified(&file, &transforms, false)?;
                    let (_, clif) = traceform_jit::compile_with_clif(&func).map_err(jit_error)?;
                    return out.write_all(clif.as_bytes()).map_err(io);
                }
            };
            if stats {
                match &report {
                    Some(r) => {
                        for line in r.to_string().lines() {
                            writeln!(out, "# {line}").map_err(io)?;
                        }
                    }
                    None => writeln!(out, "# eqns: {}", func.eqns.len()).map_err(io)?,
                }
            }
            match format {
                Format::Text => {
                    let mut buffered = std::io::BufWriter::with_capacity(1 << 16, out);
                    write_func(&func, &mut buffered).map_err(io)?;
                    buffered.flush().map_err(io)
                }
                Format::Dot => out.write_all(to_dot(&func).as_bytes()).map_err(io),
            }
        }
        Command::Run {
            program: ProgramArgs { file, transforms },
            backend,
            no_simplify,
            out: out_dir,
            inputs,
        } => {
            let (func, _) = build_simplified(&file, &transforms, no_simplify)?;
            let values = load_inputs(&func, &inputs)?;
            let prepared = Prepared::new(&func, backend)?;
            let refs: Vec<&Value> = values.iter().collect();
            let (outputs, _) = prepared.run(&refs)?;
            match out_dir {
                Some(dir) => {
                    fs::create_dir_all(&dir).map_err(|e| {
                        CliError::User(format!("{}: cannot create directory: {e}", dir.display()))
                    })?;
                    for (i, v) in outputs.iter().enumerate() {
                        let p = dir.join(format!("out{i}.npy"));
                        write_npy(&p, v)
                            .map_err(|e| CliError::User(format!("{}: {e}", p.display())))?;
                    }
                    Ok(())
                }
                None => {
                    for (i, v) in outputs.iter().enumerate() {
                        writeln!(out, "out{i}: {}", v.ty()).map_err(io)?;
                        let body = match v {
                            Value::F32(a) => format!("{a}"),
                            Value::F64(a) => format!("{a}"),
                            Value::I32(a) => format!("{a}"),
                            Value::Bool(a) => format!("{a}"),
                        };
                        writeln!(out, "{body}").map_err(io)?;
                    }
                    Ok(())
                }
            }
        }
        Command::Bench {
            program: ProgramArgs { file, transforms },
            backend,
            no_simplify,
            min_time_ms,
            inputs,
        } => {
            let t0 = Instant::now();
            let (func, simplified) = build_simplified(&file, &transforms, no_simplify)?;
            let built = t0.elapsed();
            // Inputs are checked before compiling, as the interpreter checks them first too.
            let values = load_inputs(&func, &inputs)?;
            let t1 = Instant::now();
            let prepared = Prepared::new(&func, backend)?;
            let compile_ms = (built + t1.elapsed()).as_secs_f64() * 1e3;
            let report = bench(&prepared, &values, min_time_ms)?;
            writeln!(out, "compile_ms: {compile_ms:.3}").map_err(io)?;
            writeln!(out, "run_us_median: {:.1}", report.median_us).map_err(io)?;
            writeln!(out, "runs: {}", report.runs).map_err(io)?;
            writeln!(out, "peak_bytes: {}", report.peak_bytes).map_err(io)?;
            writeln!(out, "run_us_min: {:.1}", report.min_us).map_err(io)?;
            writeln!(out, "backend: {}", prepared.name()).map_err(io)?;
            writeln!(out, "eqns: {}", func.eqns.len()).map_err(io)?;
            match simplified {
                Some(r) => writeln!(
                    out,
                    "simplify: {} -> {} eqns, {}",
                    r.eqns_before, r.eqns_after, r.stop
                ),
                None => writeln!(out, "simplify: off"),
            }
            .map_err(io)?;
            Ok(())
        }
    }
}

struct BenchReport {
    median_us: f64,
    min_us: f64,
    runs: usize,
    peak_bytes: usize,
}

/// One warm-up call, then calls until `min_time_ms` has passed (at least 5, at most 100,000);
/// the median of the per-call times.
fn bench(
    prepared: &Prepared<'_>,
    inputs: &[Value],
    min_time_ms: u64,
) -> Result<BenchReport, CliError> {
    let inputs: Vec<&Value> = inputs.iter().collect();
    let inputs = &inputs[..];
    let (_, peak_bytes) = prepared.run(inputs)?;
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 5
        || (start.elapsed().as_millis() < u128::from(min_time_ms) && times.len() < 100_000)
    {
        let t = Instant::now();
        let outs = prepared.run(inputs)?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
        drop(outs);
    }
    times.sort_by(f64::total_cmp);
    Ok(BenchReport {
        median_us: times[times.len() / 2],
        min_us: times[0],
        runs: times.len(),
        peak_bytes,
    })
}
