// wit-bindgen's transform.c references a symbol of the component type object
// it also writes (transform_component_type.o, a binary). These builds embed
// the WIT with `wasm-tools component embed` instead, so the symbol only needs
// to exist. Written by scripts/regen-c-bindings.
void __component_type_object_force_link_transform(void) {}
