#include "objects.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdio>
#include <stdexcept>

#include <boost/json/serialize.hpp>
#include <fmt/format.h>

namespace knp::lab {

ObjectPtr freeze(json::object value) {
    auto o = std::make_shared<StoredObject>();
    o->text = json::serialize(value);
    o->value = std::move(value);
    return o;
}

json::object statusObject(const ApiError& e) {
    json::object s{{"kind", "Status"},
                   {"apiVersion", "v1"},
                   {"metadata", json::object{}},
                   {"status", e.code < 400 ? "Success" : "Failure"},
                   {"message", e.message},
                   {"reason", e.reason},
                   {"code", e.code}};
    json::object details = e.details;
    if (e.retryAfterSeconds > 0) details["retryAfterSeconds"] = e.retryAfterSeconds;
    if (!details.empty()) s["details"] = std::move(details);
    return s;
}

ApiError badRequest(std::string message) { return ApiError{400, "BadRequest", std::move(message), {}, 0}; }

ApiError internalError(std::string message) {
    return ApiError{500, "InternalError", fmt::format("Internal error occurred: {}", message), {}, 0};
}

ApiError invalid(std::string_view kind, std::string_view name, std::string field, std::string message,
                 std::string_view group) {
    ApiError e{422, "Invalid", fmt::format("{} \"{}\" is invalid: {}: {}", kind, name, field, message), {}, 0};
    e.details = json::object{{"name", name}, {"kind", kind}};
    if (!group.empty()) e.details["group"] = group;
    e.details["causes"] =
        json::array{json::object{{"reason", "FieldValueInvalid"}, {"message", message}, {"field", field}}};
    return e;
}

std::string_view stringAt(const json::object& obj, std::string_view key) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->value().is_string()) return {};
    const auto& s = it->value().get_string();
    return {s.data(), s.size()};
}

const json::object* objectAt(const json::object& obj, std::string_view key) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->value().is_object()) return nullptr;
    return &it->value().get_object();
}

json::object& ensureObject(json::object& obj, std::string_view key) {
    json::value& v = obj[key];
    if (!v.is_object()) v = json::object{};
    return v.get_object();
}

std::string_view metaString(const json::object& obj, std::string_view key) {
    const json::object* m = metadataOf(obj);
    return m ? stringAt(*m, key) : std::string_view{};
}

const json::value* valueAtPath(const json::object& obj, std::string_view dotted) {
    const json::object* cur = &obj;
    const json::value* v = nullptr;
    while (true) {
        auto dot = dotted.find('.');
        std::string_view part = dotted.substr(0, dot);
        auto it = cur->find(part);
        if (it == cur->end()) return nullptr;
        v = &it->value();
        if (dot == std::string_view::npos) return v;
        if (!v->is_object()) return nullptr;
        cur = &v->get_object();
        dotted.remove_prefix(dot + 1);
    }
}

std::vector<std::string_view> splitString(std::string_view s, char sep) {
    std::vector<std::string_view> parts;
    while (true) {
        auto at = s.find(sep);
        parts.push_back(s.substr(0, at));
        if (at == std::string_view::npos) return parts;
        s.remove_prefix(at + 1);
    }
}

std::string formatTime(std::time_t t) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string nowTime() { return formatTime(std::time(nullptr)); }

std::optional<std::time_t> parseTime(std::string_view s) {
    std::tm tm{};
    std::string str(s);
    // Fractional seconds and offsets other than Z are not written by this server; accept the
    // common "…Z" form and ignore anything after the seconds.
    if (std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                    &tm.tm_min, &tm.tm_sec) != 6)
        return std::nullopt;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

namespace {
void fillRandom(unsigned char* p, std::size_t n) {
    if (RAND_bytes(p, static_cast<int>(n)) != 1) throw std::runtime_error("RAND_bytes failed");
}
}  // namespace

std::string randomUid() {
    unsigned char b[16];
    fillRandom(b, sizeof b);
    b[6] = (b[6] & 0x0f) | 0x40;  // version 4
    b[8] = (b[8] & 0x3f) | 0x80;  // RFC 4122 variant
    return fmt::format(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}", b[0],
        b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

std::string randomHex(std::size_t bytes) {
    std::string raw(bytes, '\0');
    fillRandom(reinterpret_cast<unsigned char*>(raw.data()), bytes);
    std::string out;
    for (unsigned char c : raw) out += fmt::format("{:02x}", c);
    return out;
}

std::string randomNameSuffix() {
    // The alphabet of k8s.io/apimachinery/pkg/util/rand: no vowels, no look-alikes.
    static constexpr std::string_view kAlphabet = "bcdfghjklmnpqrstvwxz2456789";
    unsigned char b[5];
    fillRandom(b, sizeof b);
    std::string s;
    for (unsigned char c : b) s += kAlphabet[c % kAlphabet.size()];
    return s;
}

std::string base64Encode(std::string_view data) {
    std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::optional<std::string> base64Decode(std::string_view data) {
    if (data.size() % 4 != 0) return std::nullopt;
    std::string out(3 * data.size() / 4 + 1, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
    if (n < 0) return std::nullopt;
    std::size_t len = static_cast<std::size_t>(n);
    // EVP_DecodeBlock counts the padding as zero bytes.
    if (!data.empty() && data.back() == '=') --len;
    if (data.size() > 1 && data[data.size() - 2] == '=') --len;
    out.resize(len);
    return out;
}

}  // namespace knp::lab
