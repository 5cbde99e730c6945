#include "common/json_util.hpp"

#include <cmath>

namespace knp::policy {

namespace json = boost::json;

void fail(const std::string& pointer, const std::string& message) { throw JsonError(pointer, message); }

std::string shown(const json::value& v) {
    std::string s = json::serialize(v);
    return s.size() <= 60 ? s : s.substr(0, 57) + "...";
}

json::value parseJson(std::string_view text, size_t maxBytes) {
    if (text.size() > maxBytes)
        fail("", "object is " + std::to_string(text.size()) + " bytes, the limit is " + std::to_string(maxBytes));
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    if (ec) fail("", "not valid JSON: " + ec.message());
    return v;
}

const json::value* member(const json::object& o, std::string_view key) noexcept {
    auto it = o.find(key);
    if (it == o.end() || it->value().is_null()) return nullptr;
    return &it->value();
}

const json::object& asObject(const json::value& v, const std::string& ptr) {
    const json::object* o = v.if_object();
    if (o == nullptr) fail(ptr, "expected an object, got " + shown(v));
    return *o;
}

const json::array& asArray(const json::value& v, const std::string& ptr, size_t limit) {
    const json::array* a = v.if_array();
    if (a == nullptr) fail(ptr, "expected a list, got " + shown(v));
    if (a->size() > limit)
        fail(ptr, "has " + std::to_string(a->size()) + " entries, the limit is " + std::to_string(limit));
    return *a;
}

std::string_view asString(const json::value& v, const std::string& ptr, size_t maxLen) {
    const json::string* s = v.if_string();
    if (s == nullptr) fail(ptr, "expected a string, got " + shown(v));
    if (s->size() > maxLen)
        fail(ptr, "is " + std::to_string(s->size()) + " characters long, the limit is " + std::to_string(maxLen));
    return std::string_view(*s);
}

int64_t asInt(const json::value& v, const std::string& ptr, int64_t min, int64_t max) {
    int64_t n = 0;
    if (v.is_int64()) {
        n = v.get_int64();
    } else if (v.is_uint64()) {
        n = INT64_MAX;  // beyond int64: certainly out of any range a caller asks for
    } else if (double d = v.is_double() ? v.get_double() : 0.5; d >= -1e18 && d <= 1e18 && std::trunc(d) == d) {
        n = static_cast<int64_t>(d);  // a converter may write 80 as 80.0
    } else {
        fail(ptr, "expected an integer, got " + shown(v));
    }
    if (n < min || n > max)
        fail(ptr, shown(v) + " is out of range " + std::to_string(min) + ".." + std::to_string(max));
    return n;
}

std::string child(const std::string& ptr, std::string_view key) { return knp::jsonPointer(ptr, key); }
std::string child(const std::string& ptr, size_t index) { return knp::jsonPointer(ptr, index); }

}  // namespace knp::policy
