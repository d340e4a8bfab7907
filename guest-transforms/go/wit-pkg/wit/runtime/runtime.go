package runtime

import (
	"fmt"
	"runtime"
	"unsafe"
)

type Handle struct {
	value int32
}

func (h *Handle) Use() int32 {
	if h.value == 0 {
		panic("nil handle")
	}
	return h.value
}

func (h *Handle) Take() int32 {
	if h.value == 0 {
		panic("nil handle")
	}
	value := h.value
	h.value = 0
	return value
}

func (h *Handle) Set(value int32) {
	if value == 0 {
		panic("nil handle")
	}
	if h.value != 0 {
		panic("handle already set")
	}
	h.value = value
}

func (h *Handle) TakeOrNil() int32 {
	value := h.value
	h.value = 0
	return value
}

func MakeHandle(value int32) *Handle {
	if value == 0 {
		panic("nil handle")
	}
	return &Handle{value}
}

func Allocate(pinner *runtime.Pinner, size, align uintptr) unsafe.Pointer {
	pointer := allocateRaw(size, align)
	pinner.Pin(pointer)
	return pointer
}

func allocateRaw(size, align uintptr) unsafe.Pointer {
	if size == 0 {
		return nil
	}

	if size%align != 0 {
		panic(fmt.Sprintf("size %v is not compatible with alignment %v", size, align))
	}

	switch align {
	case 1:
		return unsafe.Pointer(unsafe.SliceData(make([]uint8, size)))
	case 2:
		return unsafe.Pointer(unsafe.SliceData(make([]uint16, size/align)))
	case 4:
		return unsafe.Pointer(unsafe.SliceData(make([]uint32, size/align)))
	case 8:
		return unsafe.Pointer(unsafe.SliceData(make([]uint64, size/align)))
	default:
		panic(fmt.Sprintf("unsupported alignment: %v", align))
	}
}

// NB: `cabi_realloc` may be called before the Go runtime has been initialized,
// in which case we need to use `runtime.sbrk` to do allocations.  The following
// is an abbreviation of [Till's
// efforts](https://github.com/bytecodealliance/go-modules/pull/367).

//go:linkname sbrk runtime.sbrk
func sbrk(n uintptr) unsafe.Pointer

//nolint:unused
var useGCAllocations = false

func init() {
	useGCAllocations = true
}

//nolint:unused
func offset(ptr, align uintptr) uintptr {
	newptr := (ptr + align - 1) &^ (align - 1)
	return newptr - ptr
}

var pinner = runtime.Pinner{}

// Unpin is called by the generated export wrappers once they have lifted the
// call's arguments. smt patch: it also marks the argument arena for rewinding
// at the next call's first cabi_realloc (see below).
func Unpin() {
	pinner.Unpin()
	argsLifted = true
}

// smt patch (guest-transforms/go/README.md): the upstream `cabi_realloc`
// allocated the host's lowered arguments with `make` on the Go heap, pinned.
// Any such allocation can start the garbage collector, which reads the wall
// clock (a WASI import), and the component model forbids calling imports
// from `cabi_realloc`: the instance trapped with `cannot leave component
// instance` after a few thousand calls. Pausing the adapter's monotonic clock
// (upstream's mitigation) does not cover the wall clock.
//
// Here `cabi_realloc` never touches the Go heap: it serves from an argument
// arena of chunks taken with `runtime.sbrk` (linear memory the Go heap does
// not manage or scan) with a bump pointer. The lifted arguments (strings and
// slices) alias the arena, and they stay valid until the export returns:
// the first cabi_realloc of the next call rewinds the arena (`Unpin`, which
// the export wrappers call after lifting, marks it). So an export must copy
// (strings.Clone, bytes.Clone) what it keeps beyond the call; the smt SDK
// (package smt) copies the message and the config before user code sees
// them. Chunks are kept and reused: the arena's size is the largest set of
// arguments of one call (at most doubled), not a sum over calls.

// The first chunk's size; later chunks at least double the arena.
const argChunkMin = 64 << 10

// A chunk starts with a header: the next chunk's address and its own size
// (uintptrs, not pointers: nothing here is the collector's business).
const argHeader = 16

var (
	argFirst uintptr // the first chunk, 0 before the first argument
	argChunk uintptr // the chunk being filled
	argNext  uintptr // the next free byte in it
	argEnd   uintptr // its end
	argTotal uintptr // the size of all chunks
	// The arguments of the last call are lifted: the next allocation rewinds.
	argsLifted bool
)

func chunkNext(c uintptr) *uintptr { return (*uintptr)(unsafe.Pointer(c)) }
func chunkSize(c uintptr) *uintptr { return (*uintptr)(unsafe.Pointer(c + 8)) }

func argUse(c uintptr) {
	argChunk = c
	argNext = c + argHeader
	argEnd = c + *chunkSize(c)
}

// argAlloc hands out size bytes aligned to align from the arena, growing it
// with runtime.sbrk when needed. It allocates nothing on the Go heap and
// calls no import.
func argAlloc(size, align uintptr) unsafe.Pointer {
	if argsLifted {
		argsLifted = false
		if argFirst != 0 {
			argUse(argFirst)
		}
	}
	if size == 0 {
		return nil
	}
	for {
		if argChunk != 0 {
			p := (argNext + align - 1) &^ (align - 1)
			if p+size <= argEnd {
				argNext = p + size
				return unsafe.Pointer(p)
			}
			if next := *chunkNext(argChunk); next != 0 {
				argUse(next) // a later chunk kept from an earlier call
				continue
			}
		}
		n := argTotal
		if n < argChunkMin {
			n = argChunkMin
		}
		if n < size+align+argHeader {
			n = size + align + argHeader
		}
		n = (n + 65535) &^ 65535 // sbrk hands out whole Wasm pages
		c := uintptr(sbrk(n))
		if c == 0 {
			panic("cabi_realloc: out of memory for the call's arguments")
		}
		*chunkNext(c) = 0
		*chunkSize(c) = n
		argTotal += n
		if argChunk == 0 {
			argFirst = c
		} else {
			*chunkNext(argChunk) = c
		}
		argUse(c)
	}
}

// ArgumentArenaSize is the size of the argument arena in bytes (its chunks
// are kept for reuse), for tests and diagnostics.
func ArgumentArenaSize() uintptr {
	return argTotal
}

//nolint:unused
//go:wasmexport cabi_realloc
func cabiRealloc(oldPointer unsafe.Pointer, oldSize, align, newSize uintptr) unsafe.Pointer {
	if oldPointer != nil || oldSize != 0 {
		panic("todo")
	}

	if useGCAllocations {
		return argAlloc(newSize, align)
	} else {
		// Before this package's init: permanent memory, as upstream. The
		// WASI adapter's one call to cabi_realloc (its state) lands here:
		// the Go runtime's start-up already calls WASI (random_get for its
		// seed, the clocks). Results of WASI imports use the adapter's own
		// cabi_import_realloc, so after init the only caller is the host
		// lowering an export's arguments.
		alignedSize := newSize + offset(newSize, align)
		unaligned := sbrk(alignedSize)
		off := offset(uintptr(unaligned), align)
		return unsafe.Add(unaligned, off)
	}
}
