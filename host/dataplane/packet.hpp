// Packet parsing for the data path: L3/L4 headers of a queued packet into a knp_packet.
//
// THREAD: pure functions; safe from any thread; no allocation. The input is untrusted (the
// kernel copies at most copy_range bytes, and a peer controls every header), so every read is
// bounds-checked and anything short or inconsistent is reported, never read past.
#pragma once

#include <cstddef>
#include <cstdint>

#include <knp/plugin_api.h>

namespace knp::host {

enum class ParseStatus {
    Ok,
    // Not a first fragment: addresses and protocol are known, ports are not (0).
    NonFirstFragment,
    // Too short for a header it announces (copy range or a truncated packet).
    Truncated,
    // A header field is impossible (bad version, IHL < 5, length loops, too many extensions).
    Malformed,
};

const char* parseStatusName(ParseStatus s) noexcept;

// Parses an IP packet starting at its L3 header. On Ok/NonFirstFragment `out` is complete
// (headers/headers_len point into `data`); otherwise `out` is unspecified.
ParseStatus parsePacket(const uint8_t* data, size_t len, knp_packet& out) noexcept;

}  // namespace knp::host
