// Counts heap allocations made on the calling thread, in the test program and in every library
// it loads (a replaced global operator new wins symbol resolution for dlopen'ed plugins too):
// how tests show that evaluation allocates nothing. Include in exactly one file of a test
// program: it replaces the global operator new and delete.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace knp_test {
inline thread_local size_t tAllocations = 0;
}  // namespace knp_test

// GCC 12 sees free() inlined next to operator new at call sites and warns about a mismatch;
// the pairing is exactly what a replacement allocator is allowed to do.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t n) {
    ++knp_test::tAllocations;
    if (void* p = std::malloc(n != 0 ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop
