// The client memory a vfio-user server may reach: the regions the client announced with
// DMA_MAP, mmapped when they came with an fd, reached through DMA_READ/DMA_WRITE otherwise.
// Every DMA the device does goes through translate(); an IOVA outside the regions, or a write to
// a read-only one, is refused before any byte moves.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <span>

#include "base/address.h"
#include "base/fd.h"
#include "base/result.h"

namespace ioasis::devices::vfio_user {

// Why a DMA was refused: the codes the DMA engine reports in its status register.
enum class DmaFaultKind : uint8_t { kNone = 0, kUnmapped = 1, kReadOnly = 2, kPeer = 3 };

class DmaRegions {
 public:
  // Transfers through the socket for regions without an fd: read (write=false) fills `data`
  // from client memory at `iova`, write sends it.
  using RemoteAccess = std::function<Result<void>(Iova iova, std::span<uint8_t> data, bool write)>;

  // Adds [iova, iova+size). `fd` invalid: the region is reached through `remote`. Fails with
  // kAlreadyExists on overlap (the spec's EEXIST).
  Result<void> map(Iova iova, uint64_t size, bool readable, bool writable, UniqueFd fd,
                   uint64_t fd_offset);
  // Removes the region that starts at `iova` with exactly `size` bytes (the spec requires an
  // exact match). Waits for a chunk of DMA in progress on any region to finish.
  Result<void> unmap(Iova iova, uint64_t size);
  void clear();
  size_t count() const;

  void set_remote(RemoteAccess remote);

  // Checks that all of [iova, iova+length) is mapped with the access wanted, without moving data.
  DmaFaultKind check(Iova iova, uint64_t length, bool write) const;

  // Copies `length` bytes from `src` to `dst`, both IOVAs. The whole range is checked first;
  // DMA_UNMAP can still land between chunks, which fails the rest of the copy.
  DmaFaultKind copy(Iova src, Iova dst, uint64_t length);

 private:
  struct Region {
    uint64_t size = 0;
    bool readable = false;
    bool writable = false;
    MappedRegion mapping;  // invalid for socket-reached regions
  };
  // The region containing `iova`, and the bytes left in it from there.
  const Region* find(Iova iova, uint64_t* left, Iova* base) const;

  mutable std::shared_mutex mu_;
  std::map<Iova, Region> regions_;
  std::mutex remote_mu_;
  RemoteAccess remote_;
};

}  // namespace ioasis::devices::vfio_user
