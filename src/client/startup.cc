#include "client/startup.h"

#include <link.h>
#include <openssl/crypto.h>
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace patchgate::client {

namespace {

// The block that makes the heap grow goes through here, so that the compiler cannot drop
// the malloc/free pair as unused.
void* volatile g_grow = nullptr;

uintptr_t PageDown(uintptr_t a) { return a & ~(static_cast<uintptr_t>(::getpagesize()) - 1); }
uintptr_t PageUp(uintptr_t a) { return PageDown(a + static_cast<uintptr_t>(::getpagesize()) - 1); }

size_t PopulateHeap(size_t bytes) {
  if (bytes == 0 || bytes > (size_t{1} << 30)) return 0;
  if (!::mallopt(M_MMAP_THRESHOLD, static_cast<int>(bytes)) || !::mallopt(M_TOP_PAD, static_cast<int>(bytes)) ||
      !::mallopt(M_TRIM_THRESHOLD, static_cast<int>(2 * bytes)) || !::mallopt(M_ARENA_MAX, 1))
    return 0;
  // A request larger than all the free memory malloc holds (so no free block can take it)
  // makes it extend the heap now, by the request plus the pad; freed, the block goes back
  // to the top of the heap, which then spans the new part.
  const size_t request = ::mallinfo2().fordblks + 4096;
  if (request >= bytes) return 0;  // would be a mapping of its own
  auto* before = static_cast<char*>(::sbrk(0));
  if (before == reinterpret_cast<char*>(-1)) return 0;
  g_grow = std::malloc(request);
  auto* after = static_cast<char*>(::sbrk(0));
  std::free(g_grow);
  g_grow = nullptr;
  const uintptr_t begin = PageUp(reinterpret_cast<uintptr_t>(before));
  const uintptr_t end = PageDown(reinterpret_cast<uintptr_t>(after));
  if (end <= begin) return 0;
  if (::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE) != 0) return 0;
  return end - begin;
}

int PopulateReadOnlySegments(dl_phdr_info* info, size_t, void* total) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W) || ph.p_memsz == 0) continue;
    const uintptr_t begin = PageDown(info->dlpi_addr + ph.p_vaddr);
    const uintptr_t end = PageUp(info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
    if (::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_READ) == 0)
      *static_cast<size_t*>(total) += end - begin;
  }
  return 0;  // every object: the program, then its libraries
}

}  // namespace

void InitOpensslForShortRun() {
  OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG | OPENSSL_INIT_NO_ATEXIT | OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS |
                          OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ADD_ALL_DIGESTS,
                      nullptr);
}

PrefaultReport PrefaultForShortRun(size_t heap_bytes) {
  PrefaultReport r;
  r.heap_bytes = PopulateHeap(heap_bytes);
  ::dl_iterate_phdr(PopulateReadOnlySegments, &r.mapped_bytes);
  return r;
}

}  // namespace patchgate::client
