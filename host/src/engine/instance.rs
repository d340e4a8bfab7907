//! A transform instance: a `Store` and its initialised component, replaced
//! whenever a call leaves it unusable. It hides the contract version: a 0.1.0
//! guest gets its message and returns its operations in 0.1.0 types,
//! converted here. A guest of the world `batch-transform` also takes a whole
//! batch in one call ([`TransformInstance::transform_batch`]).

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;

use super::error::{CallError, FailureKind, LoadError};
use super::limits::MemoryLimitExceeded;
use super::{deadline_ticks, truncate_with_ellipsis, Pre, State, TransformModule};
use crate::contract::{v0_1_0, Message, Transform, TransformError, WriteOp as GuestOp};
use crate::writeop::{self, WriteOp};

/// `init` may do real work (parse a mapping, warm a language runtime), so it
/// gets at least this long even when the per-call deadline is shorter.
const MIN_INIT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct TransformInstance {
    module: Arc<TransformModule>,
    config: Arc<str>,
    live: Option<Live>,
}

struct Live {
    store: Store<State>,
    bindings: Bindings,
    /// The guest's `transform-batch` (world `batch-transform`), type-checked at start.
    batch: Option<wasmtime::component::Func>,
}

/// The signature of `transform-batch`.
type BatchParams<'a> = (&'a [&'a Message],);
type BatchResults = (Vec<Result<Vec<GuestOp>, TransformError>>,);

/// The name of the optional export of the world `batch-transform`.
const BATCH_EXPORT: &str = "transform-batch";

/// An instantiated component of one contract version.
enum Bindings {
    Current(Transform),
    V0_1_0(v0_1_0::Transform),
}

impl Bindings {
    fn call_init(
        &self,
        store: &mut Store<State>,
        config: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Bindings::Current(b) => b.call_init(store, config),
            Bindings::V0_1_0(b) => b.call_init(store, config),
        }
    }

    fn call_transform(
        &self,
        store: &mut Store<State>,
        msg: &Message,
    ) -> wasmtime::Result<Result<Vec<GuestOp>, TransformError>> {
        match self {
            Bindings::Current(b) => b.call_transform(store, msg),
            Bindings::V0_1_0(b) => Ok(b
                .call_transform(store, &msg.into())?
                .map(|ops| ops.into_iter().map(GuestOp::from).collect())
                .map_err(TransformError::from)),
        }
    }
}

impl TransformInstance {
    pub(super) fn new(module: Arc<TransformModule>, config: Arc<str>) -> Result<Self, LoadError> {
        let live = start(&module, &config)?;
        Ok(TransformInstance {
            module,
            config,
            live: Some(live),
        })
    }

    pub fn module(&self) -> &Arc<TransformModule> {
        &self.module
    }

    pub fn config(&self) -> &str {
        &self.config
    }

    /// Maps one record to validated write operations.
    pub fn transform(&mut self, msg: &Message) -> Result<Vec<WriteOp>, CallError> {
        let fail =
            |kind: FailureKind, message: String| call_error(self.module.name(), msg, kind, message);
        let live = match self.live.take() {
            Some(live) => live,
            None => start(&self.module, &self.config)
                .map_err(|e| fail(FailureKind::Instantiate, e.to_string()))?,
        };
        let mut live = live;
        let limits = self.module.engine.limits();
        live.store.data_mut().log.enter(msg);
        live.store
            .set_epoch_deadline(deadline_ticks(Duration::from_millis(
                limits.call_timeout_ms,
            )));
        let result = live.bindings.call_transform(&mut live.store, msg);
        live.store.data_mut().log.leave();
        let ops = match result {
            Ok(Ok(ops)) => {
                // The instance is healthy whatever we think of its output.
                self.live = Some(live);
                ops
            }
            Ok(Err(TransformError { kind, message })) => {
                self.live = Some(live);
                return Err(fail(guest_kind(kind), message));
            }
            // The instance is dropped here: after a trap it cannot be entered again.
            Err(err) => {
                let (kind, message) = classify_trap(&err, limits.call_timeout_ms);
                return Err(fail(kind, message));
            }
        };
        self.checked(ops).map_err(|(kind, m)| fail(kind, m))
    }
}

impl TransformInstance {
    /// Maps a batch through the guest's `transform-batch`: one result per
    /// record, as [`transform`](Self::transform) would give them. `None` when
    /// the guest does not export it, or when the call failed as a whole (a
    /// trap or its deadline, one call's deadline for the whole batch: the
    /// instance is replaced); the caller then calls `transform` per record.
    pub fn transform_batch(
        &mut self,
        msgs: &[&Message],
    ) -> Option<Vec<Result<Vec<WriteOp>, CallError>>> {
        let (first, last) = (msgs.first()?, msgs.last()?);
        let mut live = match self.live.take() {
            Some(live) => live,
            None => start(&self.module, &self.config).ok()?,
        };
        let Some(func) = live.batch else {
            self.live = Some(live);
            return None;
        };
        let limits = self.module.engine.limits();
        // One call's deadline for the whole batch, not one per record: a
        // looping guest then holds the partition for one deadline before the
        // per-record fallback (where each record gets its own and a looping
        // one goes to the error policy), instead of a batch's worth of them.
        // The work a batch call saves is per-call overhead, far below it.
        let timeout_ms = limits.call_timeout_ms;
        live.store.data_mut().log.enter(first);
        live.store
            .set_epoch_deadline(deadline_ticks(Duration::from_millis(timeout_ms)));
        // SAFETY: the signature was checked against the component at start.
        let typed = unsafe {
            wasmtime::component::TypedFunc::<BatchParams<'_>, BatchResults>::new_unchecked(func)
        };
        let result = typed.call(&mut live.store, (msgs,));
        live.store.data_mut().log.leave();
        let results = match result {
            Ok((results,)) if results.len() == msgs.len() => {
                self.live = Some(live);
                results
            }
            Ok((results,)) => {
                self.live = Some(live);
                tracing::warn!(transform = self.module.name(), topic = %first.topic, partition = first.partition,
                    first_offset = first.offset, last_offset = last.offset, records = msgs.len(), results = results.len(),
                    "transform-batch returned a result count that is not the record count; transforming the batch record by record.");
                return None;
            }
            Err(err) => {
                let (_, message) = classify_trap(&err, timeout_ms);
                tracing::warn!(transform = self.module.name(), topic = %first.topic, partition = first.partition,
                    first_offset = first.offset, last_offset = last.offset, error = %message,
                    "transform-batch failed as a whole; transforming the batch record by record.");
                return None;
            }
        };
        Some(
            msgs.iter()
                .zip(results)
                .map(|(msg, r)| {
                    let fail = |kind: FailureKind, message: String| {
                        call_error(self.module.name(), msg, kind, message)
                    };
                    let ops = r.map_err(|e| fail(guest_kind(e.kind), e.message))?;
                    self.checked(ops).map_err(|(kind, m)| fail(kind, m))
                })
                .collect(),
        )
    }

    /// The guest's operations converted and checked against the limits and
    /// the namespace policy.
    fn checked(&self, ops: Vec<GuestOp>) -> Result<Vec<WriteOp>, (FailureKind, String)> {
        let limits = self.module.engine.limits();
        let ops = convert(ops, limits.max_output_ops, limits.max_output_bytes)?;
        if let Some(policy) = self.module.engine.namespace_policy() {
            policy
                .check(&ops)
                .map_err(|m| (FailureKind::ForbiddenNamespace, m))?;
        }
        Ok(ops)
    }
}

fn convert(
    ops: Vec<GuestOp>,
    max_ops: usize,
    max_bytes: usize,
) -> Result<Vec<WriteOp>, (FailureKind, String)> {
    if ops.len() > max_ops {
        return Err((
            FailureKind::OutputTooLarge,
            format!("{} operations returned, the limit is {max_ops}", ops.len()),
        ));
    }
    let bytes = writeop::guest_output_size(&ops);
    if bytes > max_bytes {
        return Err((
            FailureKind::OutputTooLarge,
            format!("{bytes} bytes of documents returned, the limit is {max_bytes}"),
        ));
    }
    ops.into_iter()
        .enumerate()
        .map(|(i, op)| {
            WriteOp::from_guest(op)
                .map_err(|e| (FailureKind::InvalidOperation, format!("operation {i}: {e}")))
        })
        .collect()
}

/// Instantiates the module in a fresh store and runs `init`.
fn start(module: &TransformModule, config: &str) -> Result<Live, LoadError> {
    let init_error = |reason: String| LoadError::Init {
        name: module.name().to_owned(),
        reason,
    };
    let engine = &module.engine;
    let mut store = engine.new_store(module);
    let init_timeout = Duration::from_millis(engine.limits().call_timeout_ms).max(MIN_INIT_TIMEOUT);
    store.set_epoch_deadline(deadline_ticks(init_timeout));
    let instantiated = match &module.pre {
        Pre::Current(pre) => pre
            .instance_pre()
            .instantiate(&mut store)
            .and_then(|instance| {
                let bindings = Transform::new(&mut store, &instance)?;
                Ok((Bindings::Current(bindings), Some(instance)))
            }),
        Pre::V0_1_0(pre) => pre
            .instantiate(&mut store)
            .map(|b| (Bindings::V0_1_0(b), None)),
    };
    let (bindings, instance) = instantiated.map_err(|e| {
        init_error(format!(
            "instantiation failed: {}",
            classify_trap(&e, init_timeout.as_millis() as u64).1
        ))
    })?;
    // `transform-batch` is optional (world `batch-transform`); when it is
    // there it must have the contract's signature.
    let batch = match instance.and_then(|i| i.get_func(&mut store, BATCH_EXPORT)) {
        Some(func) => {
            func.typed::<BatchParams<'_>, BatchResults>(&store)
                .map_err(|e| {
                    init_error(format!(
                        "the export `{BATCH_EXPORT}` does not have the contract's signature: {e:#}"
                    ))
                })?;
            Some(func)
        }
        None => None,
    };
    match bindings.call_init(&mut store, config) {
        Ok(Ok(())) => Ok(Live {
            store,
            bindings,
            batch,
        }),
        Ok(Err(message)) => Err(init_error(message)),
        Err(err) => Err(init_error(
            classify_trap(&err, init_timeout.as_millis() as u64).1,
        )),
    }
}

fn guest_kind(kind: crate::contract::ErrorKind) -> FailureKind {
    use crate::contract::ErrorKind;
    match kind {
        ErrorKind::BadInput => FailureKind::BadInput,
        ErrorKind::Unsupported => FailureKind::Unsupported,
        ErrorKind::Internal => FailureKind::Internal,
    }
}

/// Longest trap description kept (guest backtraces can be long).
const MAX_TRAP_MESSAGE: usize = 2048;

fn classify_trap(err: &wasmtime::Error, timeout_ms: u64) -> (FailureKind, String) {
    if err.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
        return (
            FailureKind::Timeout,
            format!("the call ran past its deadline of {timeout_ms} ms and was interrupted"),
        );
    }
    if let Some(limit) = err.downcast_ref::<MemoryLimitExceeded>() {
        return (FailureKind::MemoryLimit, limit.to_string());
    }
    let text = format!("{err:#}");
    // wasmtime's own count limits (instances, memories, tables of a store,
    // `engine.limits.max-*`) are plain errors at instantiation: name them as
    // the resource limit they are, not as a guest bug.
    if text.contains("resource limit exceeded") {
        let mut message = text;
        truncate_with_ellipsis(&mut message, MAX_TRAP_MESSAGE);
        return (FailureKind::MemoryLimit, message);
    }
    let mut message = format!("guest trapped: {text}");
    truncate_with_ellipsis(&mut message, MAX_TRAP_MESSAGE);
    (FailureKind::Trap, message)
}

/// A failed call of `transform` on `msg`, named by its topic/partition/offset.
fn call_error(transform: &str, msg: &Message, kind: FailureKind, message: String) -> CallError {
    CallError {
        transform: transform.to_owned(),
        topic: msg.topic.clone(),
        partition: msg.partition,
        offset: msg.offset,
        kind,
        message,
    }
}
