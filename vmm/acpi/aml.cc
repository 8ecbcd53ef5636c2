#include "vmm/acpi/aml.h"

#include <cctype>

namespace ioasis::acpi::aml {
namespace {

// Opcodes and prefixes, ACPI 6.5 section 20.3 (AML byte stream byte values).
constexpr uint8_t kZeroOp = 0x00;
constexpr uint8_t kOneOp = 0x01;
constexpr uint8_t kNameOp = 0x08;
constexpr uint8_t kBytePrefix = 0x0a;
constexpr uint8_t kWordPrefix = 0x0b;
constexpr uint8_t kDWordPrefix = 0x0c;
constexpr uint8_t kStringPrefix = 0x0d;
constexpr uint8_t kQWordPrefix = 0x0e;
constexpr uint8_t kScopeOp = 0x10;
constexpr uint8_t kBufferOp = 0x11;
constexpr uint8_t kPackageOp = 0x12;
constexpr uint8_t kMethodOp = 0x14;
constexpr uint8_t kDualNamePrefix = 0x2e;
constexpr uint8_t kMultiNamePrefix = 0x2f;
constexpr uint8_t kExtOpPrefix = 0x5b;
constexpr uint8_t kRootChar = 0x5c;  // '\'
constexpr uint8_t kDeviceOp = 0x82;  // after ExtOpPrefix
constexpr uint8_t kNotifyOp = 0x86;
constexpr uint8_t kReturnOp = 0xa4;
constexpr uint8_t kOnesOp = 0xff;

void append_le(Aml& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.append_byte(static_cast<uint8_t>(value >> (8 * i)));
}

// NameSeg (20.2.2): a lead character in [A-Z_], then up to three of [A-Z0-9_], padded with '_'.
bool append_name_seg(Aml& out, std::string_view seg) {
  if (seg.empty() || seg.size() > 4) return false;
  for (size_t i = 0; i < seg.size(); ++i) {
    char c = seg[i];
    bool lead_ok = (c >= 'A' && c <= 'Z') || c == '_';
    bool ok = lead_ok || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
    out.append_byte(static_cast<uint8_t>(c));
  }
  for (size_t i = seg.size(); i < 4; ++i) out.append_byte('_');
  return true;
}

// Wraps `body` as `prefix PkgLength body`, the shape of every variable-length AML object.
Aml with_pkg_length(std::span<const uint8_t> prefix, const Aml& body) {
  Aml out(std::vector<uint8_t>(prefix.begin(), prefix.end()), body.valid());
  auto len = encode_pkg_length(body.bytes().size());
  if (!len) {
    out.invalidate();
    return out;
  }
  out.append_bytes(*len);
  out.append(body);
  return out;
}

}  // namespace

void Aml::append(const Aml& other) {
  bytes_.insert(bytes_.end(), other.bytes_.begin(), other.bytes_.end());
  valid_ = valid_ && other.valid_;
}

std::optional<std::vector<uint8_t>> encode_pkg_length(size_t body_length) {
  // One byte holds 6 bits of length; each extra byte (up to three) adds 8 bits to a 4-bit
  // nibble in the lead byte, so four bytes reach 2^28 - 1. The count of extra bytes sits in the
  // lead byte's top two bits.
  if (body_length + 1 <= 0x3f) return std::vector<uint8_t>{static_cast<uint8_t>(body_length + 1)};
  for (size_t extra = 1; extra <= 3; ++extra) {
    size_t total = body_length + 1 + extra;
    if (total >= (size_t{1} << (4 + 8 * extra))) continue;
    std::vector<uint8_t> out;
    out.push_back(static_cast<uint8_t>((extra << 6) | (total & 0x0f)));
    for (size_t i = 0; i < extra; ++i) out.push_back(static_cast<uint8_t>(total >> (4 + 8 * i)));
    return out;
  }
  return std::nullopt;
}

Aml name_string(std::string_view path) {
  Aml out;
  if (!path.empty() && path.front() == '\\') {
    out.append_byte(kRootChar);
    path.remove_prefix(1);
  }
  std::vector<std::string_view> segs;
  while (!path.empty()) {
    size_t dot = path.find('.');
    segs.push_back(path.substr(0, dot));
    path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
    if (dot != std::string_view::npos && path.empty()) segs.push_back(path);  // trailing '.'
  }
  if (segs.empty()) {
    out.append_byte(kZeroOp);                       // NullName: the root itself
    if (out.bytes().size() == 1) out.invalidate();  // "" names nothing
    return out;
  }
  if (segs.size() > 255) out.invalidate();
  if (segs.size() == 2) out.append_byte(kDualNamePrefix);
  if (segs.size() > 2) {
    out.append_byte(kMultiNamePrefix);
    out.append_byte(static_cast<uint8_t>(segs.size()));
  }
  for (auto seg : segs) {
    if (!append_name_seg(out, seg)) out.invalidate();
  }
  return out;
}

Aml integer(uint64_t value) {
  Aml out;
  if (value == 0) {
    out.append_byte(kZeroOp);
  } else if (value == 1) {
    out.append_byte(kOneOp);
  } else if (value == ~uint64_t{0}) {
    out.append_byte(kOnesOp);
  } else if (value <= 0xff) {
    out.append_byte(kBytePrefix);
    append_le(out, value, 1);
  } else if (value <= 0xffff) {
    out.append_byte(kWordPrefix);
    append_le(out, value, 2);
  } else if (value <= 0xffffffff) {
    out.append_byte(kDWordPrefix);
    append_le(out, value, 4);
  } else {
    out.append_byte(kQWordPrefix);
    append_le(out, value, 8);
  }
  return out;
}

Aml string(std::string_view ascii) {
  Aml out;
  out.append_byte(kStringPrefix);
  for (char c : ascii) {
    auto b = static_cast<uint8_t>(c);
    if (b == 0 || b > 0x7f) out.invalidate();
    out.append_byte(b);
  }
  out.append_byte(0);
  return out;
}

Aml eisa_id(std::string_view id) {
  bool ok = id.size() == 7;
  for (size_t i = 0; ok && i < 3; ++i) ok = id[i] >= 'A' && id[i] <= 'Z';
  for (size_t i = 3; ok && i < 7; ++i) ok = std::isxdigit(static_cast<unsigned char>(id[i]));
  if (!ok) return Aml({}, false);
  // Letters become 5-bit values ('A' = 1), packed big-endian with the product number; the DWord
  // is then stored so that its first byte in memory is the most significant of that packing.
  auto letter = [&](size_t i) { return static_cast<uint32_t>(id[i] - 0x40); };
  auto hex = [&](size_t i) {
    char c = static_cast<char>(std::toupper(static_cast<unsigned char>(id[i])));
    return static_cast<uint32_t>(c <= '9' ? c - '0' : c - 'A' + 10);
  };
  uint32_t packed = (letter(0) << 26) | (letter(1) << 21) | (letter(2) << 16) | (hex(3) << 12) |
                    (hex(4) << 8) | (hex(5) << 4) | hex(6);
  Aml out;
  out.append_byte(kDWordPrefix);
  for (int shift = 24; shift >= 0; shift -= 8)
    out.append_byte(static_cast<uint8_t>(packed >> shift));
  return out;
}

Aml buffer(std::span<const uint8_t> data) {
  Aml body = integer(data.size());
  body.append_bytes(data);
  const uint8_t op[] = {kBufferOp};
  return with_pkg_length(op, body);
}

Aml package(const std::vector<Aml>& elements) {
  Aml body;
  if (elements.size() > 255) body.invalidate();  // NumElements is a single byte
  body.append_byte(static_cast<uint8_t>(elements.size()));
  for (const auto& e : elements) body.append(e);
  const uint8_t op[] = {kPackageOp};
  return with_pkg_length(op, body);
}

Aml name(std::string_view name, const Aml& value) {
  Aml out;
  out.append_byte(kNameOp);
  out.append(name_string(name));
  out.append(value);
  return out;
}

Aml scope(std::string_view path, const std::vector<Aml>& terms) {
  Aml body = name_string(path);
  body.append(term_list(terms));
  const uint8_t op[] = {kScopeOp};
  return with_pkg_length(op, body);
}

Aml device(std::string_view name, const std::vector<Aml>& terms) {
  Aml body = name_string(name);
  body.append(term_list(terms));
  const uint8_t op[] = {kExtOpPrefix, kDeviceOp};
  return with_pkg_length(op, body);
}

Aml method(std::string_view name, uint8_t arg_count, bool serialized,
           const std::vector<Aml>& terms) {
  Aml body = name_string(name);
  if (arg_count > 7) body.invalidate();  // MethodFlags bits 0-2
  body.append_byte(static_cast<uint8_t>((arg_count & 0x7) | (serialized ? 0x08 : 0)));
  body.append(term_list(terms));
  const uint8_t op[] = {kMethodOp};
  return with_pkg_length(op, body);
}

Aml return_value(const Aml& value) {
  Aml out;
  out.append_byte(kReturnOp);
  out.append(value);
  return out;
}

Aml notify(std::string_view path, uint64_t value) {
  Aml out;
  out.append_byte(kNotifyOp);
  out.append(name_string(path));
  out.append(integer(value));
  return out;
}

Aml term_list(const std::vector<Aml>& terms) {
  Aml out;
  for (const auto& t : terms) out.append(t);
  return out;
}

}  // namespace ioasis::acpi::aml
