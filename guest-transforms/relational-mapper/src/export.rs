//! The component's exports: `init`, `transform` and `transform-batch` (the
//! world `batch-transform` of wit/transform.wit). A host that knows
//! `transform-batch` hands it a whole batch, and the documents the batch
//! changes are rebuilt once each; a host that does not calls `transform`
//! per record, which rebuilds after every record: the same documents.

#[cfg(all(target_arch = "wasm32", feature = "export"))]
mod component {
    use crate::Mapper;
    use smt_guest::Transform;
    use std::cell::UnsafeCell;

    smt_guest::__wit_bindgen::generate!({
        world: "batch-transform",
        path: "../../wit",
        runtime_path: "smt_guest::__wit_bindgen::rt",
        // The contract's types are the SDK's, so the mapper's code uses one set.
        with: {
            "smt:transform/types@0.2.0": smt_guest::bindings::smt::transform::types,
            "smt:transform/log@0.2.0": smt_guest::bindings::smt::transform::log,
        },
    });

    /// The instance `init` builds, kept for the component's life.
    struct Slot(UnsafeCell<Option<Mapper>>);
    // SAFETY: a component instance is single-threaded and its exports do not re-enter.
    unsafe impl Sync for Slot {}
    static MAPPER: Slot = Slot(UnsafeCell::new(None));

    fn mapper() -> Result<&'static Mapper, TransformError> {
        // SAFETY: see `Sync`; `init` does not run during another export.
        unsafe { &*MAPPER.0.get() }
            .as_ref()
            .ok_or_else(|| TransformError::internal("transform called before a successful init"))
    }

    struct Export;

    impl Guest for Export {
        fn init(config: String) -> Result<(), String> {
            // A panic traps the instance; its message would otherwise be lost.
            std::panic::set_hook(Box::new(|info| {
                smt_guest::log::error(&format!("transform panicked: {info}"))
            }));
            let m = Mapper::init(&config)?;
            // SAFETY: see `Sync`; no reference into the slot is alive.
            unsafe { *MAPPER.0.get() = Some(m) };
            Ok(())
        }

        fn transform(msg: Message) -> Result<Vec<WriteOp>, TransformError> {
            mapper()?.transform(&msg)
        }

        fn transform_batch(msgs: Vec<Message>) -> Vec<Result<Vec<WriteOp>, TransformError>> {
            match mapper() {
                Ok(m) => m.transform_batch(&msgs),
                Err(e) => msgs.iter().map(|_| Err(e.clone())).collect(),
            }
        }
    }

    export!(Export);
}
