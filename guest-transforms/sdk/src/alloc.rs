//! The guest's memory allocator: size classes with free lists.
//!
//! A transform allocates and frees many small blocks per record (parsed JSON
//! nodes, keys, strings, the operations' text) and the host's copies of the
//! record arrive through `cabi_realloc`. In Wasm the default allocator
//! (wasi-libc's dlmalloc behind `__rust_alloc`) costs several calls and a
//! hundred-odd instructions per block; here a block of up to 4 KiB is a pop
//! from, or a push onto, the free list of its power-of-two class, refilled
//! from 64 KiB chunks of the system allocator. Larger blocks, and blocks
//! aligned to more than 16 bytes, go to the system allocator.
//!
//! Freed small blocks are kept for reuse by their class and never returned:
//! the memory of an instance is its peak, per class, of small blocks plus
//! dlmalloc's own. (Wasm memories never shrink anyway.)
//!
//! It is the global allocator of a guest built for `wasm32` without threads
//! when the SDK's `allocator` feature is on (the default); turn the feature
//! off to use another one. Natively it is only compiled for its tests.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Smallest class: 8 bytes (room for the free-list link on wasm32 and 64-bit hosts).
const MIN_SHIFT: u32 = 3;
/// Largest class: 4 KiB; larger blocks go to the system allocator.
const MAX_SHIFT: u32 = 12;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// Alignment guaranteed to every small block of 16 bytes or more.
const MAX_ALIGN: usize = 16;
/// What the system allocator is asked for when the current chunk is used up.
const CHUNK: usize = 64 << 10;

/// The allocator's state. Not thread-safe: see [`Global`].
pub(crate) struct Heap {
    /// Per class, the first free block; each free block holds the next.
    free: [*mut u8; CLASSES],
    /// The unused end of the current chunk.
    next: *mut u8,
    end: *mut u8,
}

/// The class of a layout served from the free lists, or `None` for the system allocator.
#[inline]
fn class_of(layout: Layout) -> Option<usize> {
    // A block is aligned to its size, up to 16: round small sizes up to the alignment.
    let size = layout.size().max(layout.align());
    if size > 1 << MAX_SHIFT || layout.align() > MAX_ALIGN {
        return None;
    }
    let shift = size
        .max(1 << MIN_SHIFT)
        .next_power_of_two()
        .trailing_zeros();
    Some((shift - MIN_SHIFT) as usize)
}

#[inline]
fn class_size(class: usize) -> usize {
    1 << (class as u32 + MIN_SHIFT)
}

impl Heap {
    pub(crate) const fn new() -> Self {
        Heap {
            free: [ptr::null_mut(); CLASSES],
            next: ptr::null_mut(),
            end: ptr::null_mut(),
        }
    }

    /// # Safety
    /// As [`GlobalAlloc::alloc`].
    #[inline]
    pub(crate) unsafe fn alloc(&mut self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            Some(class) => self.alloc_small(class),
            None => System.alloc(layout),
        }
    }

    /// # Safety
    /// As [`GlobalAlloc::dealloc`]: `ptr` came from this heap with `layout`.
    #[inline]
    pub(crate) unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        match class_of(layout) {
            Some(class) => {
                (ptr as *mut *mut u8).write(self.free[class]);
                self.free[class] = ptr;
            }
            None => System.dealloc(ptr, layout),
        }
    }

    /// # Safety
    /// As [`GlobalAlloc::realloc`].
    pub(crate) unsafe fn realloc(
        &mut self,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
    ) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        match (class_of(layout), class_of(new_layout)) {
            // The block has room. (A block that shrinks to a smaller class
            // moves: freed under its new layout it would join that class for
            // good, and its own class would have to carve new blocks.)
            (Some(old), Some(new)) if new == old => ptr,
            (None, None) => System.realloc(ptr, layout, new_size),
            _ => {
                let new_ptr = self.alloc(new_layout);
                if !new_ptr.is_null() {
                    ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new_ptr
            }
        }
    }

    #[inline]
    unsafe fn alloc_small(&mut self, class: usize) -> *mut u8 {
        let head = self.free[class];
        if !head.is_null() {
            self.free[class] = (head as *mut *mut u8).read();
            return head;
        }
        self.carve(class_size(class))
    }

    /// A new block from the current chunk, or from a new chunk.
    unsafe fn carve(&mut self, size: usize) -> *mut u8 {
        let align = size.min(MAX_ALIGN);
        let mut start = (self.next as usize).next_multiple_of(align);
        if self.next.is_null() || start + size > self.end as usize {
            let chunk = System.alloc(Layout::from_size_align_unchecked(CHUNK, MAX_ALIGN));
            if chunk.is_null() {
                return chunk;
            }
            self.end = chunk.add(CHUNK);
            start = chunk as usize;
        }
        self.next = (start + size) as *mut u8;
        start as *mut u8
    }
}

/// [`Heap`] as the global allocator.
pub(crate) struct Global(std::cell::UnsafeCell<Heap>);

// SAFETY: only used as the global allocator of single-threaded Wasm (see the
// `cfg` on its one instance in lib.rs): a component instance runs one call at
// a time on one thread, and the heap calls nothing that allocates through it.
unsafe impl Sync for Global {}

impl Global {
    pub(crate) const fn new() -> Self {
        Global(std::cell::UnsafeCell::new(Heap::new()))
    }
}

unsafe impl GlobalAlloc for Global {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        (*self.0.get()).alloc(layout)
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        (*self.0.get()).dealloc(ptr, layout)
    }
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        (*self.0.get()).realloc(ptr, layout, new_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn classes() {
        assert_eq!(class_of(layout(0, 1)), Some(0));
        assert_eq!(class_of(layout(8, 8)), Some(0));
        assert_eq!(class_of(layout(9, 1)), Some(1));
        assert_eq!(class_of(layout(4096, 8)), Some(CLASSES - 1));
        assert_eq!(class_of(layout(4097, 8)), None);
        assert_eq!(class_of(layout(64, 32)), None);
        assert_eq!(class_of(layout(1, 16)), Some(1));
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_reused() {
        let mut heap = Heap::new();
        let sizes = [1usize, 7, 8, 12, 16, 24, 33, 100, 1000, 4096, 5000, 70_000];
        let mut live = Vec::new();
        for round in 0..50 {
            for (i, &size) in sizes.iter().enumerate() {
                let align = [1, 2, 4, 8, 16][(i + round) % 5];
                let l = layout(size, align);
                let p = unsafe { heap.alloc(l) };
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                unsafe { ptr::write_bytes(p, (round % 251) as u8, size) };
                live.push((p, l, (round % 251) as u8));
            }
            // Free every other block, oldest first.
            if round % 2 == 1 {
                let keep = live.split_off(live.len() / 2);
                for (p, l, fill) in live.drain(..) {
                    let bytes = unsafe { std::slice::from_raw_parts(p, l.size()) };
                    assert!(bytes.iter().all(|&b| b == fill), "a block was overwritten");
                    unsafe { heap.dealloc(p, l) };
                }
                live = keep;
            }
        }
        // Live blocks never overlap.
        let mut spans: Vec<(usize, usize)> = live
            .iter()
            .map(|(p, l, _)| (*p as usize, *p as usize + l.size().max(1)))
            .collect();
        spans.sort();
        assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0));
        for (p, l, fill) in live {
            let bytes = unsafe { std::slice::from_raw_parts(p, l.size()) };
            assert!(bytes.iter().all(|&b| b == fill));
            unsafe { heap.dealloc(p, l) };
        }
        // A freed block is handed out again.
        let l = layout(40, 8);
        let a = unsafe { heap.alloc(l) };
        unsafe { heap.dealloc(a, l) };
        assert_eq!(unsafe { heap.alloc(l) }, a);
    }

    #[test]
    fn realloc_keeps_the_contents() {
        let mut heap = Heap::new();
        let l = layout(10, 1);
        let mut p = unsafe { heap.alloc(l) };
        unsafe { ptr::copy_nonoverlapping(b"0123456789".as_ptr(), p, 10) };
        let mut size = 10;
        // Within the class, then across classes, then to and from the system allocator.
        for new_size in [16, 17, 100, 4096, 10_000, 50_000, 3000, 12] {
            p = unsafe { heap.realloc(p, layout(size, 1), new_size) };
            assert!(!p.is_null());
            let bytes = unsafe { std::slice::from_raw_parts(p, 10) };
            assert_eq!(bytes, b"0123456789");
            size = new_size;
        }
        unsafe { heap.dealloc(p, layout(size, 1)) };
    }
}
