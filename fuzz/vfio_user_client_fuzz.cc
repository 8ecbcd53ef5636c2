// Everything the vfio-user client reads from a server, fed arbitrary bytes: message headers,
// VERSION JSON, device, region and IRQ info (with capability chains), and the replies to
// region and DMA accesses. The parsers must reject or accept, never crash or read out of
// bounds.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "devices/vfio/vfio_user_messages.h"
#include "devices/vfio/vfio_user_socket.h"

using namespace ioasis::devices::vfio_user;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  uint8_t selector = data[0];
  uint8_t fd_count = data[1] & 3;
  std::span<const uint8_t> payload(data + 2, size - 2);
  if (payload.size() >= sizeof(Header)) {
    Header h;
    std::memcpy(&h, payload.data(), sizeof(h));
    (void)check_header(h, kMaxMessageSize);
  }
  switch (selector % 7) {
    case 0:
      (void)parse_version(payload);
      break;
    case 1:
      (void)parse_region_info(payload, selector >> 3, fd_count);
      break;
    case 2:
      (void)parse_device_info(payload);
      break;
    case 3:
      (void)parse_irq_info(payload, selector >> 3);
      break;
    case 4:
      (void)parse_region_read_reply(payload, RegionAccess{0, 0, selector});
      break;
    case 5:
      (void)parse_region_write_reply(payload, RegionAccess{0, 7, 4});
      break;
    case 6:
      (void)parse_dma_read_reply(payload, DmaAccess{0x1000, selector});
      (void)parse_dma_write_reply(payload, DmaAccess{0x1000, selector});
      break;
  }
  return 0;
}
