//! traceform's Cranelift backend: `compile` a verified `Func` into an [`Executable`] and `run`
//! it on `Value`s or views (`ValueRef`), agreeing with the reference interpreter
//! (`traceform_runtime::eval`).
//!
//! The pipeline is `plan` (which equations fuse into which loop, `plan.rs`), `memory` (one
//! arena, buffers reused by live interval, `memory.rs`), `codegen` (fused loops in Cranelift,
//! several per function, `codegen.rs`, with transcendentals as host kernels over tiles,
//! `host.rs`), and
//! one compiled function for the whole program (`program`, `EntryFn`), which calls every step
//! in order: compiled loops, and through `tf_step` the runtime's GEMM for `dot_general`
//! (`gemm.rs`), convolutions, loops cut for two threads, and explicit runtime-kernel calls for
//! the primitives listed in `docs/jit.md`.
//!
//! Inputs are read in place (a row-major one is passed to the compiled code as it is, one in
//! another layout copied once into row-major order) and checked against the signature before
//! any compiled code runs; compiled code calls only host kernels that cannot panic and
//! `tf_step`, which catches panics, so no unwinding crosses a compiled frame. The compiled
//! code is freed when the `Executable` is dropped.

mod codegen;
mod gemm;
mod host;
mod memory;
mod parallel;
mod plan;

use std::mem::MaybeUninit;
use std::sync::Mutex;

use cranelift_codegen::ir::{types, AbiParam};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use traceform_ir::{Atom, DType, Func, Prim, Type, Var};
use traceform_runtime::{
    apply, check_inputs, conv_general_dilated_into, AsValueRef, Value, ValueRef, MAX_VALUE_BYTES,
};

pub use memory::{MemoryPlan, Place};
pub use plan::{is_fusible, lowering, Lowering, Plan, Step, StepKind};

/// Why a function could not be compiled or run.
#[derive(Clone, Debug, thiserror::Error)]
pub enum JitError {
    /// The caller's inputs do not fit the signature (the interpreter's message).
    #[error("{0}")]
    Input(String),
    /// The program cannot be compiled for this machine.
    #[error("cannot compile `{func}`: {message}")]
    Compile { func: String, message: String },
    /// A runtime kernel rejected verified operands: a bug in traceform.
    #[error("internal error in equation {eqn} (`{name}`): {message}")]
    Kernel {
        eqn: usize,
        name: String,
        message: String,
    },
}

/// A compiled loop: `fn(buffers)`, the table holding one pointer per materialised value.
type KernelFn = unsafe extern "C" fn(*const *mut u8);

/// The compiled program: `fn(buffers, call) -> status`. It calls the compiled loops in order,
/// and `tf_step(call, step)` for every other step (GEMM, convolutions, a loop cut for two
/// threads, runtime kernels), returning the first nonzero status (the error is in `call`).
type EntryFn = unsafe extern "C" fn(*const *mut u8, *mut u8) -> i32;

/// What `tf_step` needs of one call of the program.
struct Call<'a> {
    exe: &'a Executable,
    table: &'a [*mut u8],
    second: &'a parallel::SecondBlock,
    error: Option<JitError>,
}

/// Runs step `step` of the program whose `Call` is `call` (from compiled code): 0 when it
/// succeeds, 1 with the error left in the `Call` when it fails. A panic (a bug in traceform)
/// is caught here and becomes the error, so it never unwinds through compiled frames.
extern "C" fn tf_step(call: *mut u8, step: u32) -> i32 {
    // SAFETY: the program passes on the `Call` `Executable::run` made for this call, alive
    // and not otherwise borrowed while the program runs.
    let call = unsafe { &mut *call.cast::<Call<'_>>() };
    let step = step as usize;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        call.exe.host_step(step, call.table, call.second)
    }));
    let error = match result {
        Ok(Ok(())) => return 0,
        Ok(Err(e)) => e,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            let eqn = call.exe.step_eqn(step);
            let func = &call.exe.func;
            JitError::Kernel {
                eqn,
                name: func
                    .eqns
                    .get(eqn)
                    .map_or("", |e| func.prim(e).name())
                    .to_string(),
                message,
            }
        }
    };
    call.error = Some(error);
    1
}

enum Exec {
    Kernel(KernelFn),
    /// A loop cut for two threads, and its root equation.
    Parallel(Box<parallel::Parallel>, u32),
    Gemm(u32),
    Convolutions(Vec<u32>),
    Runtime(u32),
}

/// A compiled function.
pub struct Executable {
    /// The modules holding the compiled loops (freed on drop).
    modules: Vec<JITModule>,
    func: Func,
    plan: Plan,
    memory: MemoryPlan,
    /// Per value: its index in the buffer table (`u32::MAX` when not materialised).
    slot_of: Vec<u32>,
    /// Per buffer-table index: the value.
    slots: Vec<Var>,
    /// Per step of the program, what it runs (`tf_step` runs all but the loops).
    exec: Vec<Exec>,
    /// The program (`EntryFn`).
    entry: EntryFn,
    /// The arena of intermediate values, then the scratch of transcendental tiles, then (when
    /// a loop is cut for two threads) the second block's scratch and partial results.
    arena: Mutex<Vec<u64>>,
    scratch_bytes: usize,
    /// Bytes of partial results of the cut loop that needs the most.
    partial_bytes: usize,
}

// SAFETY: after `compile` the modules are never used through `&self` (only dropped, which
// needs `&mut self`): `run` reads the finalized code through plain function pointers, the
// plan and the memory layout (immutable), and the arena behind a mutex. The `RefCell` inside a
// `JITModule` is therefore never touched from two threads.
unsafe impl Send for Executable {}
// SAFETY: see above.
unsafe impl Sync for Executable {}

impl Drop for Executable {
    fn drop(&mut self) {
        for module in self.modules.drain(..) {
            // SAFETY: no function pointer of these modules outlives the executable.
            unsafe { module.free_memory() };
        }
    }
}

/// Loops over fewer elements than this are compiled without Cranelift's optimiser and with
/// its single-pass register allocator: the optimiser doubles compile time, and a loop this
/// short runs in well under a microsecond either way. (The backtracking allocator took a
/// fifth of the chain workload's hvp compile: 81-92 ms against 67-72 single-pass, the hvp
/// running in 10.0 µs instead of 8.7.)
const OPTIMISE_FROM_ELEMENTS: usize = plan::SHORT_LOOP;

fn isa(opt_level: &str) -> Result<cranelift_codegen::isa::OwnedTargetIsa, String> {
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| {
        f.set(k, v).map_err(|e| format!("flag {k}={v}: {e}"))
    };
    set(&mut flags, "opt_level", opt_level)?;
    if opt_level == "none" {
        set(&mut flags, "regalloc_algorithm", "single_pass")?;
    }
    set(&mut flags, "is_pic", "false")?;
    set(&mut flags, "use_colocated_libcalls", "false")?;
    // The verifier in debug builds (tests), not in release, where it doubles compile time.
    let verify = if cfg!(debug_assertions) {
        "true"
    } else {
        "false"
    };
    set(&mut flags, "enable_verifier", verify)?;
    let builder = cranelift_native::builder().map_err(|e| format!("host not supported: {e}"))?;
    builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| format!("host not supported: {e}"))
}

/// Cranelift's reusable function and builder contexts.
struct Contexts {
    ctx: cranelift_codegen::Context,
    fctx: cranelift_frontend::FunctionBuilderContext,
}

/// A JIT module with the host kernels declared.
struct CodeModule {
    module: JITModule,
    host_ids: Vec<(&'static str, FuncId)>,
    /// `tf_step`, imported.
    step_id: FuncId,
}

/// What the program does at one step.
#[derive(Clone, Copy)]
enum EntryStep {
    /// Calls a function of the module the program is compiled into.
    Local(FuncId),
    /// Calls a finalized function of the other module, at this address.
    Address(*const u8),
    /// Calls `tf_step` with the step's index.
    Host,
}

impl CodeModule {
    fn new(opt_level: &str) -> Result<CodeModule, String> {
        let mut builder = JITBuilder::with_isa(isa(opt_level)?, default_libcall_names());
        let hosts = host::all();
        for h in &hosts {
            builder.symbol(h.name, h.address);
        }
        let step_fn: extern "C" fn(*mut u8, u32) -> i32 = tf_step;
        builder.symbol("tf_step", step_fn as *const u8);
        let mut module = JITModule::new(builder);
        let ptr = module.target_config().pointer_type();
        let mut sig = module.make_signature();
        sig.params.push(AbiParam::new(ptr));
        sig.params.push(AbiParam::new(types::I32));
        sig.returns.push(AbiParam::new(types::I32));
        let step_id = module
            .declare_function("tf_step", Linkage::Import, &sig)
            .map_err(|e| e.to_string())?;
        let mut host_ids = Vec::new();
        for h in &hosts {
            let mut sig = module.make_signature();
            sig.params.push(AbiParam::new(ptr));
            if h.binary {
                sig.params.push(AbiParam::new(ptr));
            }
            sig.params.push(AbiParam::new(types::I64));
            let id = module
                .declare_function(h.name, Linkage::Import, &sig)
                .map_err(|e| e.to_string())?;
            host_ids.push((h.name, id));
        }
        Ok(CodeModule {
            module,
            host_ids,
            step_id,
        })
    }

    /// Compiles the program `program`: `steps` in order, returning the first nonzero status
    /// of a `tf_step`, else 0.
    fn add_entry(
        &mut self,
        steps: &[EntryStep],
        contexts: &mut Contexts,
        clif: Option<&mut Vec<String>>,
    ) -> Result<FuncId, String> {
        use cranelift_codegen::ir::InstBuilder;
        let Contexts { ctx, fctx } = contexts;
        let module = &mut self.module;
        let ptr = module.target_config().pointer_type();
        let mut sig = module.make_signature();
        sig.params.push(AbiParam::new(ptr));
        sig.params.push(AbiParam::new(ptr));
        sig.returns.push(AbiParam::new(types::I32));
        let id = module
            .declare_function("program", Linkage::Local, &sig)
            .map_err(|e| e.to_string())?;
        let mut loop_sig = module.make_signature();
        loop_sig.params.push(AbiParam::new(ptr));
        ctx.func.signature = sig;
        ctx.func.name = cranelift_codegen::ir::UserFuncName::user(0, id.as_u32());
        {
            let mut b = cranelift_frontend::FunctionBuilder::new(&mut ctx.func, fctx);
            let loop_sig = b.import_signature(loop_sig);
            let step_ref = module.declare_func_in_func(self.step_id, b.func);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let (table, call) = (b.block_params(entry)[0], b.block_params(entry)[1]);
            let failed = b.create_block();
            b.append_block_param(failed, types::I32);
            for (i, step) in steps.iter().enumerate() {
                match *step {
                    EntryStep::Local(f) => {
                        let f = module.declare_func_in_func(f, b.func);
                        b.ins().call(f, &[table]);
                    }
                    EntryStep::Address(code) => {
                        let at = b.ins().iconst(ptr, code as i64);
                        b.ins().call_indirect(loop_sig, at, &[table]);
                    }
                    EntryStep::Host => {
                        let index = b.ins().iconst(types::I32, i as i64);
                        let done = b.ins().call(step_ref, &[call, index]);
                        let status = b.inst_results(done)[0];
                        let next = b.create_block();
                        b.ins().brif(status, failed, &[status.into()], next, &[]);
                        b.switch_to_block(next);
                    }
                }
            }
            let ok = b.ins().iconst(types::I32, 0);
            b.ins().return_(&[ok]);
            b.switch_to_block(failed);
            let status = b.block_params(failed)[0];
            b.ins().return_(&[status]);
            b.seal_all_blocks();
            b.finalize(module.target_config());
        }
        if let Some(out) = clif {
            out.push(format!(
                "; program: every step in order, before Cranelift's optimiser\n{}",
                ctx.func.display()
            ));
        }
        module
            .define_function(id, ctx)
            .map_err(|e| format!("the program: {e:?}"))?;
        module.clear_context(ctx);
        Ok(id)
    }

    /// Compiles consecutive fused loops from step `first` as the one function
    /// `loops{first}`, or the loop of step `first` cut for two threads as `block{first}`.
    fn add_function(
        &mut self,
        first: usize,
        loops: Loops<'_>,
        values: &Values<'_>,
        contexts: &mut Contexts,
        clif: Option<&mut Vec<String>>,
    ) -> Result<FuncId, String> {
        let Contexts { ctx, fctx } = contexts;
        let module = &mut self.module;
        let host_ids = &self.host_ids;
        let lookup = |name: &'static str| {
            host_ids
                .iter()
                .find(|(n, _)| *n == name)
                .map(|&(_, id)| id)
                .expect("every host kernel is declared")
        };
        let mut sig = module.make_signature();
        sig.params
            .push(AbiParam::new(module.target_config().pointer_type()));
        let (name, what) = match loops {
            Loops::Segment(kernels) => (
                format!("loops{first}"),
                format!("steps {first}..{}", first + kernels.len()),
            ),
            Loops::Cut(_) => {
                sig.params.push(AbiParam::new(types::I64));
                sig.params.push(AbiParam::new(types::I64));
                (
                    format!("block{first}"),
                    format!("step {first}, cut for two threads"),
                )
            }
        };
        let id = module
            .declare_function(&name, Linkage::Local, &sig)
            .map_err(|e| e.to_string())?;
        let layout = codegen::Layout {
            slot: values.slot,
            param: values.param,
            contract: values.contract,
            scratch_slot: values.scratch_slot,
            host_ids: &lookup,
        };
        match loops {
            Loops::Segment(kernels) => {
                codegen::compile_segment(module, ctx, fctx, id, kernels, &layout)?
            }
            Loops::Cut(kernel) => {
                codegen::compile_parallel(module, ctx, fctx, id, kernel, &layout)?
            }
        }
        if let Some(out) = clif {
            out.push(format!(
                "; {name}: {what}, before Cranelift's optimiser\n{}",
                ctx.func.display()
            ));
        }
        module
            .define_function(id, ctx)
            .map_err(|e| format!("{what}: {e:?}"))?;
        module.clear_context(ctx);
        Ok(id)
    }
}

/// Where a compiled function finds each value, and how it may compute.
struct Values<'a> {
    slot: &'a dyn Fn(Var) -> usize,
    param: &'a dyn Fn(Var) -> bool,
    contract: bool,
    scratch_slot: usize,
}

/// What one compiled function runs.
#[derive(Clone, Copy)]
enum Loops<'a> {
    /// Consecutive fused loops, `fn(table)`.
    Segment(&'a [&'a plan::Kernel]),
    /// One loop cut for two threads, `fn(table, lo, hi)`.
    Cut(&'a plan::Kernel),
}

/// At most this many fused loops go into one compiled function.
const SEGMENT_LOOPS: usize = 8;

/// Compiles `func` (verified).
pub fn compile(func: &Func) -> Result<Executable, JitError> {
    compile_keeping_clif(func, None)
}

/// `compile`, also returning the Cranelift IR of every compiled function (as built, before
/// Cranelift's own optimiser), for `dump --stage clif`.
pub fn compile_with_clif(func: &Func) -> Result<(Executable, String), JitError> {
    let mut functions = Vec::new();
    let exe = compile_keeping_clif(func, Some(&mut functions))?;
    Ok((exe, functions.join("\n")))
}

fn compile_keeping_clif(
    func: &Func,
    mut clif: Option<&mut Vec<String>>,
) -> Result<Executable, JitError> {
    let err = |message: String| JitError::Compile {
        func: func.name.clone(),
        message,
    };
    if let Some(eqn) = func
        .eqns
        .iter()
        .find(|e| func.var_type(e.out).size_bytes() > MAX_VALUE_BYTES)
    {
        let ty = func.var_type(eqn.out);
        return Err(JitError::Input(format!(
            "`{}` (`{}`) has type {ty}, which needs {} bytes; the JIT allocates at most {MAX_VALUE_BYTES} bytes per value",
            func.var_name(eqn.out),
            func.prim(eqn).name(),
            ty.size_bytes()
        )));
    }
    let plan = Plan::new(func);
    let memory = MemoryPlan::new(func, &plan);
    let mut slot_of = vec![u32::MAX; func.num_vars()];
    let mut slots = Vec::new();
    for (v, &m) in plan.materialised.iter().enumerate() {
        if m {
            slot_of[v] = slots.len() as u32;
            slots.push(Var(v as u32));
        }
    }
    let slot = |v: Var| slot_of[v.index()] as usize;
    let param = |v: Var| matches!(memory.places[v.index()], Place::Param(_));
    // A program that mixes float precisions keeps every rounding of the lower one as
    // written: a cast lays it bare to the other's tolerance (the corpus's
    // `convert_element_type` hvp, in f32 and judged in f64, moved by 1.1e-7 with products
    // folded into multiply-adds).
    let contract = !func.eqns.iter().any(|e| {
        matches!(func.prim(e), Prim::ConvertElementType { .. })
            && func.var_type(e.out).dtype.is_float()
            && func.args(e).iter().any(|a| {
                let d = func.atom_type(a).dtype;
                d.is_float() && d != func.var_type(e.out).dtype
            })
    });
    // Two modules: short loops unoptimised, long ones optimised (made only when needed).
    let mut modules: [Option<CodeModule>; 2] = [None, None];
    let mut contexts = Contexts {
        ctx: cranelift_codegen::Context::new(),
        fctx: cranelift_frontend::FunctionBuilderContext::new(),
    };
    let values = Values {
        slot: &slot,
        param: &param,
        contract,
        scratch_slot: slots.len(),
    };
    // Runs of consecutive fused loops of one module become one function each.
    enum Planned {
        Segment(usize, FuncId),
        Parallel(FuncId, codegen::Split, DType, Vec<parallel::Output>, u32),
        Other(Exec),
    }
    let mut partial_bytes = 0;
    let mut planned: Vec<Planned> = Vec::new();
    let mut i = 0;
    while i < plan.steps.len() {
        let step = &plan.steps[i];
        let StepKind::Kernel(kernel) = &step.kind else {
            planned.push(Planned::Other(match &step.kind {
                StepKind::Gemm { eqn } => Exec::Gemm(*eqn),
                StepKind::Convolutions { eqns } => Exec::Convolutions(eqns.clone()),
                _ => Exec::Runtime(step_eqn(func, step)),
            }));
            i += 1;
            continue;
        };
        if let Some(split) = codegen::split(kernel) {
            if modules[1].is_none() {
                modules[1] = Some(CodeModule::new("speed").map_err(err)?);
            }
            let m = modules[1].as_mut().expect("made above");
            let id = m
                .add_function(
                    i,
                    Loops::Cut(kernel),
                    &values,
                    &mut contexts,
                    clif.as_deref_mut(),
                )
                .map_err(err)?;
            let outputs = parallel_outputs(kernel, &split, &slot);
            partial_bytes = partial_bytes.max(codegen::partial_bytes(kernel, &split));
            let eqn = step_eqn(func, step);
            planned.push(Planned::Parallel(id, split, kernel.out_dtype, outputs, eqn));
            i += 1;
            continue;
        }
        let class = |k: &plan::Kernel| {
            usize::from(k.domain.iter().product::<usize>() >= OPTIMISE_FROM_ELEMENTS)
        };
        let which = class(kernel);
        let mut kernels: Vec<&plan::Kernel> = vec![kernel];
        while kernels.len() < SEGMENT_LOOPS {
            match plan.steps.get(i + kernels.len()).map(|s| &s.kind) {
                Some(StepKind::Kernel(k)) if class(k) == which && codegen::split(k).is_none() => {
                    kernels.push(k.as_ref())
                }
                _ => break,
            }
        }
        if modules[which].is_none() {
            let level = if which == 1 { "speed" } else { "none" };
            modules[which] = Some(CodeModule::new(level).map_err(err)?);
        }
        let m = modules[which].as_mut().expect("made above");
        let id = m
            .add_function(
                i,
                Loops::Segment(&kernels),
                &values,
                &mut contexts,
                clif.as_deref_mut(),
            )
            .map_err(err)?;
        planned.push(Planned::Segment(which, id));
        i += kernels.len();
    }
    // The program goes into the module of short loops (unoptimised: it is a list of calls),
    // after the other one is finalized, whose functions it calls by address.
    if let Some(m) = modules[1].as_mut() {
        m.module
            .finalize_definitions()
            .map_err(|e| err(e.to_string()))?;
    }
    let steps: Vec<EntryStep> = planned
        .iter()
        .map(|p| match p {
            Planned::Segment(0, id) => EntryStep::Local(*id),
            Planned::Segment(_, id) => {
                let m = modules[1].as_ref().expect("compiled into");
                EntryStep::Address(m.module.get_finalized_function(*id))
            }
            Planned::Parallel(..) | Planned::Other(_) => EntryStep::Host,
        })
        .collect();
    if modules[0].is_none() {
        modules[0] = Some(CodeModule::new("none").map_err(err)?);
    }
    let m = modules[0].as_mut().expect("made above");
    let entry_id = m.add_entry(&steps, &mut contexts, clif).map_err(err)?;
    m.module
        .finalize_definitions()
        .map_err(|e| err(e.to_string()))?;
    let entry = m.module.get_finalized_function(entry_id);
    // SAFETY: compiled with the signature `fn(*const *mut u8, *mut u8) -> i32`.
    let entry = unsafe { std::mem::transmute::<*const u8, EntryFn>(entry) };
    let exec = planned
        .into_iter()
        .map(|p| match p {
            Planned::Segment(which, id) => {
                let m = modules[which].as_ref().expect("compiled into");
                let code = m.module.get_finalized_function(id);
                // SAFETY: compiled with the signature `fn(*const *mut u8)`.
                Exec::Kernel(unsafe { std::mem::transmute::<*const u8, KernelFn>(code) })
            }
            Planned::Parallel(id, split, dtype, outputs, eqn) => {
                let m = modules[1].as_ref().expect("compiled into");
                let code = m.module.get_finalized_function(id);
                // SAFETY: compiled with the signature `fn(*const *mut u8, i64, i64)`.
                let f = unsafe { std::mem::transmute::<*const u8, parallel::ParallelFn>(code) };
                Exec::Parallel(
                    Box::new(parallel::Parallel {
                        f,
                        split,
                        dtype,
                        outputs,
                    }),
                    eqn,
                )
            }
            Planned::Other(e) => e,
        })
        .collect();
    let scratch_bytes = plan
        .steps
        .iter()
        .filter_map(|s| match &s.kind {
            StepKind::Kernel(k) => Some(codegen::scratch_bytes(k)),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let arena_words = arena_bytes(&memory, scratch_bytes, partial_bytes).div_ceil(8);
    let arena = Mutex::new(vec![0u64; arena_words]);
    Ok(Executable {
        modules: modules.into_iter().flatten().map(|m| m.module).collect(),
        func: func.clone(),
        plan,
        memory,
        slot_of,
        slots,
        exec,
        entry,
        arena,
        scratch_bytes,
        partial_bytes,
    })
}

/// The arena's bytes: values, scratch, then (with cut loops) a second scratch and the
/// partial results.
fn arena_bytes(memory: &MemoryPlan, scratch_bytes: usize, partial_bytes: usize) -> usize {
    let second = if partial_bytes > 0 || scratch_bytes > 0 {
        scratch_bytes.next_multiple_of(64) + partial_bytes
    } else {
        0
    };
    memory.arena_bytes + scratch_bytes.next_multiple_of(64) + second
}

/// The folding outputs of a cut loop, with the place of each partial result.
fn parallel_outputs(
    kernel: &plan::Kernel,
    split: &codegen::Split,
    slot: &dyn Fn(Var) -> usize,
) -> Vec<parallel::Output> {
    let root = (
        kernel.out,
        kernel.out_len,
        kernel.reduce.as_ref().map(|r| r.0),
    );
    let siblings = kernel.siblings.iter().map(|s| (s.out, s.len, s.reduce));
    let mut at = 0;
    std::iter::once(root)
        .chain(siblings)
        .enumerate()
        .filter_map(|(o, (out, len, op))| {
            let op = op?;
            let partial = split.partial.contains(&o).then(|| {
                let here = at;
                at += (len * kernel.out_dtype.size_bytes()).next_multiple_of(64);
                here
            });
            Some(parallel::Output {
                slot: slot(out),
                len,
                op,
                partial,
            })
        })
        .collect()
}

/// The equation computing a step's result.
fn step_eqn(func: &Func, step: &Step) -> u32 {
    match &step.kind {
        StepKind::Gemm { eqn } | StepKind::Runtime { eqn } => *eqn,
        StepKind::Convolutions { eqns } => eqns[0],
        StepKind::Kernel(k) => *k.eqns.last().unwrap_or(&0),
    }
    .min(func.eqns.len().saturating_sub(1) as u32)
}

/// The first element of a value's buffer (standard layout).
fn value_ptr(v: &mut Value) -> *mut u8 {
    match v {
        Value::F32(a) => a.as_mut_ptr() as *mut u8,
        Value::F64(a) => a.as_mut_ptr() as *mut u8,
        Value::I32(a) => a.as_mut_ptr() as *mut u8,
        Value::Bool(a) => a.as_mut_ptr() as *mut u8,
    }
}

/// A row-major buffer of type `ty`, viewed where it is.
///
/// # Safety
/// `ptr` must be non-null, aligned (even when `ty` has no elements) and hold
/// `ty.num_elements()` elements of `ty.dtype` (bools as 0 or 1), which nothing writes while
/// the view lives.
unsafe fn view_buffer<'a>(ty: &Type, ptr: *const u8) -> ValueRef<'a> {
    let shape = IxDyn(&ty.shape);
    macro_rules! view {
        ($t:ty, $variant:ident) => {
            // SAFETY: the caller's contract; a shape without strides is row-major.
            ValueRef::$variant(unsafe { ArrayViewD::from_shape_ptr(shape, ptr as *const $t) })
        };
    }
    match ty.dtype {
        DType::F32 => view!(f32, F32),
        DType::F64 => view!(f64, F64),
        DType::I32 => view!(i32, I32),
        DType::Bool => view!(bool, Bool),
    }
}

/// Copies `v` into the row-major buffer at `ptr`.
///
/// # Safety
/// `ptr` must have room for `v`'s elements.
unsafe fn write_value(v: &Value, ptr: *mut u8) {
    macro_rules! write {
        ($a:expr, $t:ty) => {{
            let dst = ptr as *mut $t;
            for (i, &x) in $a.iter().enumerate() {
                // SAFETY: the caller's contract.
                unsafe { dst.add(i).write(x) };
            }
        }};
    }
    match v {
        Value::F32(a) => write!(a, f32),
        Value::F64(a) => write!(a, f64),
        Value::I32(a) => write!(a, i32),
        Value::Bool(a) => write!(a, bool),
    }
}

impl Executable {
    /// The bytes of the arena holding every materialised intermediate value (inputs and
    /// outputs excluded): the planned peak.
    pub fn peak_bytes(&self) -> usize {
        self.memory.arena_bytes
    }

    /// The function compiled.
    pub fn func(&self) -> &Func {
        &self.func
    }

    /// The fusion plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The fusion plan as text: one line per step, with where each materialised value lives.
    pub fn describe(&self) -> String {
        let mut s = self.plan.describe(&self.func);
        let namer = traceform_ir::Namer::new(&self.func);
        for (i, step) in self.plan.steps.iter().enumerate() {
            if let Some(split) = match &step.kind {
                StepKind::Kernel(k) => codegen::split(k),
                _ => None,
            } {
                s.push_str(&format!(
                    "step {i} runs on two threads: indices 0..{} and {}..{} of its outermost loop{}\n",
                    split.cut,
                    split.cut,
                    split.len,
                    if split.partial.is_empty() {
                        ""
                    } else {
                        " (the second block folds into partial results)"
                    }
                ));
            }
            for out in std::iter::once(&step.out).chain(&step.also) {
                if let Place::Arena(at) = self.memory.places[out.index()] {
                    s.push_str(&format!(
                        "buffer of step {i} ({}): arena offset {at}\n",
                        namer.name(*out)
                    ));
                }
            }
        }
        s.push_str(&format!(
            "arena: {} bytes (and {} bytes of tiles for transcendentals)\n",
            self.memory.arena_bytes, self.scratch_bytes
        ));
        s
    }

    /// Runs the compiled function on `inputs` (checked against the signature first):
    /// `&[Value]`, `&[&Value]` or `&[ValueRef]`. An input in standard layout is read where it
    /// is; one in another layout (a transposed or strided view) is copied once into standard
    /// layout.
    pub fn run<V: AsValueRef>(&self, inputs: &[V]) -> Result<Vec<Value>, JitError> {
        let inputs: Vec<ValueRef<'_>> = inputs.iter().map(AsValueRef::as_value_ref).collect();
        self.run_borrowed(&inputs)
    }

    /// `run`, not generic, so it is compiled with this crate, not in the caller's.
    fn run_borrowed(&self, inputs: &[ValueRef<'_>]) -> Result<Vec<Value>, JitError> {
        let func = &self.func;
        check_inputs(func, inputs).map_err(|e| JitError::Input(e.to_string()))?;
        // Inputs in another layout are copied into standard layout first.
        let mut copies: Vec<Option<Value>> = inputs
            .iter()
            .map(|v| (!v.is_standard_layout()).then(|| v.to_owned()))
            .collect();
        // Compiled code never writes a parameter's buffer.
        let input_ptrs: Vec<*mut u8> = inputs
            .iter()
            .zip(&mut copies)
            .map(|(v, copy)| match copy {
                Some(c) => value_ptr(c),
                None => borrowed_ptr(v),
            })
            .collect();
        // Output arrays are not zeroed first: the steps write every element of them.
        let mut outputs: Vec<Option<Unwritten>> = func
            .outputs
            .iter()
            .enumerate()
            .map(|(i, a)| match a {
                Atom::Var(v) if self.memory.places[v.index()] == Place::Output(i) => {
                    Some(Unwritten::new(func.var_type(*v)))
                }
                _ => None,
            })
            .collect();
        // The executable's arena, or (when another thread is running it) one of this call's.
        let mut own_arena: Vec<u64>;
        let mut guard = self.arena.try_lock().ok();
        let arena_ptr = match &mut guard {
            Some(arena) => arena.as_mut_ptr() as *mut u8,
            None => {
                let bytes = arena_bytes(&self.memory, self.scratch_bytes, self.partial_bytes);
                own_arena = vec![0u64; bytes.div_ceil(8)];
                own_arena.as_mut_ptr() as *mut u8
            }
        };
        let mut table: Vec<*mut u8> = self
            .slots
            .iter()
            .map(|v| match self.memory.places[v.index()] {
                Place::Param(i) => input_ptrs[i],
                Place::Output(i) => outputs[i].as_mut().expect("made above").ptr(),
                // SAFETY: the arena holds `arena_bytes` bytes.
                Place::Arena(at) => unsafe { arena_ptr.add(at) },
                Place::None => std::ptr::null_mut(),
            })
            .collect();
        // SAFETY: the scratch follows the values in the arena (64-byte aligned).
        table.push(unsafe { arena_ptr.add(self.memory.arena_bytes) });
        let scratch_slot = self.slots.len();
        // SAFETY: the arena holds both scratches and the partial area (`arena_bytes`).
        let second = unsafe {
            let scratch =
                arena_ptr.add(self.memory.arena_bytes + self.scratch_bytes.next_multiple_of(64));
            parallel::SecondBlock {
                scratch_slot,
                scratch,
                partials: scratch.add(self.scratch_bytes.next_multiple_of(64)),
            }
        };
        let mut call = Call {
            exe: self,
            table: &table,
            second: &second,
            error: None,
        };
        // SAFETY: the table holds a buffer of the right size for every value a step reads or
        // writes, the inputs were checked against the signature, and `call` outlives the
        // program, which hands it only to `tf_step`.
        let status = unsafe { (self.entry)(table.as_ptr(), (&mut call as *mut Call<'_>).cast()) };
        if status != 0 {
            return Err(call.error.take().expect("a failing step leaves its error"));
        }
        drop(guard);
        let mut result = Vec::with_capacity(func.outputs.len());
        for (i, a) in func.outputs.iter().enumerate() {
            let value = match a {
                Atom::Lit(l) => Value::from_literal(l),
                Atom::Var(v) => match self.memory.places[v.index()] {
                    Place::Param(p) => inputs[p].to_owned(),
                    // SAFETY: every step writes every element of its result, and every
                    // step has run.
                    Place::Output(j) if j == i => unsafe {
                        outputs[i].take().expect("made above").assume_init()
                    },
                    Place::Output(j) => result.get(j).cloned().expect("an earlier output position"),
                    Place::Arena(_) | Place::None => unreachable!("outputs have their own place"),
                },
            };
            result.push(value);
        }
        Ok(result)
    }

    /// Runs step `step` (for `tf_step`).
    fn host_step(
        &self,
        step: usize,
        table: &[*mut u8],
        second: &parallel::SecondBlock,
    ) -> Result<(), JitError> {
        match &self.exec[step] {
            // SAFETY: the table holds a buffer of the right size for every value the loop
            // reads or writes, and the inputs were checked against the signature.
            Exec::Kernel(f) => unsafe { f(table.as_ptr()) },
            // SAFETY: as above; the second scratch and the partial area are this call's.
            Exec::Parallel(p, _) => unsafe { p.run(table, second) },
            Exec::Gemm(eqn) => self.gemm(*eqn, table),
            Exec::Convolutions(eqns) => self.convolutions(eqns, table),
            Exec::Runtime(eqn) => self.runtime_call(*eqn, table)?,
        }
        Ok(())
    }

    /// An equation of step `step`, to name in an error.
    fn step_eqn(&self, step: usize) -> usize {
        match &self.exec[step] {
            Exec::Gemm(eqn) | Exec::Runtime(eqn) => *eqn as usize,
            Exec::Convolutions(eqns) => eqns.first().map_or(0, |&e| e as usize),
            Exec::Parallel(_, eqn) => *eqn as usize,
            Exec::Kernel(_) => 0,
        }
    }

    fn buffer(&self, table: &[*mut u8], v: Var) -> *mut u8 {
        table[self.slot_of[v.index()] as usize]
    }

    fn gemm(&self, eqn: u32, table: &[*mut u8]) {
        let func = &self.func;
        let e = &func.eqns[eqn as usize];
        let Prim::DotGeneral(dims) = func.prim(e) else {
            unreachable!("a gemm step is a dot_general")
        };
        let args = func.args(e);
        let (x, y) = match (&args[0], &args[1]) {
            (Atom::Var(x), Atom::Var(y)) => (*x, *y),
            _ => unreachable!("dot_general operands are not rank-0 literals"),
        };
        let (xt, yt) = (func.var_type(x), func.var_type(y));
        let (xp, yp, op) = (
            self.buffer(table, x),
            self.buffer(table, y),
            self.buffer(table, e.out),
        );
        // SAFETY: the buffers hold the verified types; the result's buffer is its own.
        unsafe {
            match xt.dtype {
                DType::F32 => gemm::dot_general::<f32>(
                    dims,
                    xp as *const f32,
                    &xt.shape,
                    yp as *const f32,
                    &yt.shape,
                    op as *mut f32,
                ),
                _ => gemm::dot_general::<f64>(
                    dims,
                    xp as *const f64,
                    &xt.shape,
                    yp as *const f64,
                    &yt.shape,
                    op as *mut f64,
                ),
            }
        }
    }

    /// Convolutions of one lhs (`StepKind::Convolutions`), each written into its buffer.
    fn convolutions(&self, eqns: &[u32], table: &[*mut u8]) {
        let func = &self.func;
        let first = &func.eqns[eqns[0] as usize];
        let Prim::ConvGeneralDilated(dims) = func.prim(first) else {
            unreachable!("a convolution step convolves")
        };
        let operand = |e: u32, i: usize| {
            func.args(&func.eqns[e as usize])[i]
                .as_var()
                .expect("a convolution step's operands are values")
        };
        let lhs = operand(eqns[0], 0);
        let out_ty = func.var_type(first.out);
        macro_rules! run {
            ($t:ty, $variant:ident) => {{
                // SAFETY: materialised values' buffers hold their verified types; the results
                // are distinct buffers, none of them an operand's (`memory.rs`), and only
                // they are written while the views live.
                unsafe {
                    let view = |v: Var| match view_buffer(func.var_type(v), self.buffer(table, v)) {
                        ValueRef::$variant(a) => a,
                        _ => unreachable!("operands of the result's dtype"),
                    };
                    let rhs: Vec<_> = eqns.iter().map(|&e| view(operand(e, 1))).collect();
                    let len = out_ty.num_elements();
                    let mut outs: Vec<&mut [$t]> = eqns
                        .iter()
                        .map(|&e| {
                            let out = self.buffer(table, func.eqns[e as usize].out);
                            std::slice::from_raw_parts_mut(out as *mut $t, len)
                        })
                        .collect();
                    conv_general_dilated_into(&view(lhs), &rhs, dims, &out_ty.shape, &mut outs);
                }
            }};
        }
        match out_ty.dtype {
            DType::F32 => run!(f32, F32),
            _ => run!(f64, F64),
        }
    }

    /// An explicit call of the runtime's kernel: operands read in their buffers (parameters
    /// in the caller's arrays), the result copied into its own.
    fn runtime_call(&self, eqn: u32, table: &[*mut u8]) -> Result<(), JitError> {
        let func = &self.func;
        let e = &func.eqns[eqn as usize];
        let prim = func.prim(e);
        let operands = func.args(e);
        let literals: Vec<Value> = operands
            .iter()
            .filter_map(|a| match a {
                Atom::Lit(l) => Some(Value::from_literal(l)),
                Atom::Var(_) => None,
            })
            .collect();
        let mut literals = literals.iter();
        let args: Vec<ValueRef<'_>> = operands
            .iter()
            .map(|a| match a {
                Atom::Lit(_) => literals.next().expect("one value per literal").view(),
                // SAFETY: a materialised value's buffer holds its type (arena places are
                // aligned to 64 bytes, parameters and outputs are arrays of their dtype), and
                // the result's buffer, the only one written before the views are dropped, is
                // not one of them.
                Atom::Var(v) => unsafe { view_buffer(func.var_type(*v), self.buffer(table, *v)) },
            })
            .collect();
        let out_ty = func.var_type(e.out);
        let value = apply(prim, &args, out_ty).map_err(|k| JitError::Kernel {
            eqn: eqn as usize,
            name: func.var_name(e.out),
            message: k.to_string(),
        })?;
        if &value.ty() != out_ty {
            return Err(JitError::Kernel {
                eqn: eqn as usize,
                name: func.var_name(e.out),
                message: format!("kernel made {}, expected {out_ty}", value.ty()),
            });
        }
        drop(args);
        // SAFETY: the result's buffer has room for its type.
        unsafe { write_value(&value, self.buffer(table, e.out)) };
        Ok(())
    }
}

/// An output array before the steps have written it.
enum Unwritten {
    F32(ArrayD<MaybeUninit<f32>>),
    F64(ArrayD<MaybeUninit<f64>>),
    I32(ArrayD<MaybeUninit<i32>>),
    Bool(ArrayD<MaybeUninit<bool>>),
}

impl Unwritten {
    fn new(ty: &Type) -> Unwritten {
        let shape = IxDyn(&ty.shape);
        match ty.dtype {
            DType::F32 => Unwritten::F32(ArrayD::uninit(shape)),
            DType::F64 => Unwritten::F64(ArrayD::uninit(shape)),
            DType::I32 => Unwritten::I32(ArrayD::uninit(shape)),
            DType::Bool => Unwritten::Bool(ArrayD::uninit(shape)),
        }
    }

    fn ptr(&mut self) -> *mut u8 {
        match self {
            Unwritten::F32(a) => a.as_mut_ptr() as *mut u8,
            Unwritten::F64(a) => a.as_mut_ptr() as *mut u8,
            Unwritten::I32(a) => a.as_mut_ptr() as *mut u8,
            Unwritten::Bool(a) => a.as_mut_ptr() as *mut u8,
        }
    }

    /// # Safety
    /// Every element must have been written (bools as 0 or 1).
    unsafe fn assume_init(self) -> Value {
        // SAFETY: the caller's contract.
        unsafe {
            match self {
                Unwritten::F32(a) => Value::F32(a.assume_init()),
                Unwritten::F64(a) => Value::F64(a.assume_init()),
                Unwritten::I32(a) => Value::I32(a.assume_init()),
                Unwritten::Bool(a) => Value::Bool(a.assume_init()),
            }
        }
    }
}

/// The first element of a view in standard layout (a dense row-major buffer).
fn borrowed_ptr(v: &ValueRef<'_>) -> *mut u8 {
    match v {
        ValueRef::F32(a) => a.as_ptr() as *mut u8,
        ValueRef::F64(a) => a.as_ptr() as *mut u8,
        ValueRef::I32(a) => a.as_ptr() as *mut u8,
        ValueRef::Bool(a) => a.as_ptr() as *mut u8,
    }
}
