// Start-up of a short-lived client process (one refresh and a few downloads, then exit):
// the memory it is about to touch, mapped in one system call per region instead of one
// page fault per 4 KiB page.
//
// Why: every first touch of a page is a page fault, and on a virtual machine a fault costs
// far more than the work it does (measured on the project's 2-core VM: about 19 us per
// fault, about 1 us per page mapped by MADV_POPULATE_*). A cold binned refresh plus one
// download took about 330 faults, about a third of them on the heap, a third in the code
// of the program and its libraries.
//
// PrefaultForShortRun(heap_bytes):
//   - malloc's main heap grows by heap_bytes at once (its top pad) and keeps what is freed
//     at its top, allocations up to heap_bytes come from it instead of a mapping each, all
//     threads share it (one arena, not one per thread), and those heap_bytes are populated
//     now, writable (MADV_POPULATE_WRITE);
//   - the read-only segments (code and constants) of the program and of every library
//     loaded are populated (MADV_POPULATE_READ): their pages are mapped now, from the page
//     cache (or read from disk, once, on a cold cache).
// For a process that ends after its result, never for a server: the heap is not given
// back to the system until exit.
//
// Thread-safety: call once, first thing in main, before any other thread exists. Never
// fails: a kernel without MADV_POPULATE_* (before Linux 5.14) or a libc that refuses a
// setting leaves that part as it was; the report says what was done.
#pragma once

#include <cstddef>

namespace patchgate::client {

struct PrefaultReport {
  size_t heap_bytes = 0;    // heap populated writable
  size_t mapped_bytes = 0;  // read-only segments populated
};

PrefaultReport PrefaultForShortRun(size_t heap_bytes);

// Starts OpenSSL for a short run that only verifies signatures and hashes:
//   - the system's openssl.cnf is read (an administrator's providers and properties, e.g.
//     FIPS, govern the signature checks);
//   - its error texts are not loaded (a hash table of about 3,000 strings built at the first
//     error mark: about 1 ms and 20 page faults of a cold refresh); a message with an
//     OpenSSL error keeps the code and names `openssl errstr CODE` (crypto/keys.cc);
//   - the legacy cipher and digest tables are not built (about 0.6 ms and 10 faults): the
//     first fetch copies every name in them into the provider name map, while every
//     algorithm a key needs is named by its provider (names, aliases and OIDs);
//   - nothing is freed at exit: the process ending frees it (~3% of a run).
// Call once, before any other use of OpenSSL; the flags only take effect on a first start.
void InitOpensslForShortRun();

}  // namespace patchgate::client
