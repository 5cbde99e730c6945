// Objects as the lab API server holds them, the API error type, and the small metadata helpers
// every layer shares. THREAD: plain values; an ObjectPtr is immutable and may be shared freely.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

namespace knp::lab {

namespace json = boost::json;

// One stored object and its serialization, built once when the object is written. Immutable
// after that, so the store, the event history and every watch queue share it without copies
// (a LIST of 100k pods concatenates the cached texts instead of serializing again).
struct StoredObject {
    json::object value;
    std::string text;
};
using ObjectPtr = std::shared_ptr<const StoredObject>;
ObjectPtr freeze(json::object value);

// An error as the API returns it: a metav1.Status with code, reason and details.
struct ApiError {
    int code = 500;
    std::string reason;
    std::string message;
    json::object details;
    int retryAfterSeconds = 0;  // > 0: sent as Retry-After and details.retryAfterSeconds
};
json::object statusObject(const ApiError& e);
ApiError badRequest(std::string message);
ApiError invalid(std::string_view kind, std::string_view name, std::string field, std::string message,
                 std::string_view group = "");
ApiError internalError(std::string message);

// Result of an API operation: a value or the Status to return. g++ 12 has no std::expected.
template <class T>
class [[nodiscard]] ApiResult {
public:
    ApiResult(T value) : v_(std::move(value)) {}
    ApiResult(ApiError e) : v_(std::move(e)) {}
    bool ok() const noexcept { return v_.index() == 0; }
    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    const ApiError& error() const& { return std::get<1>(v_); }

private:
    std::variant<T, ApiError> v_;
};

// Metadata accessors; a missing or non-string field reads as "".
std::string_view stringAt(const json::object& obj, std::string_view key);
const json::object* objectAt(const json::object& obj, std::string_view key);
json::object& ensureObject(json::object& obj, std::string_view key);
inline const json::object* metadataOf(const json::object& obj) { return objectAt(obj, "metadata"); }
std::string_view metaString(const json::object& obj, std::string_view key);
// The value at a dotted path ("spec.nodeName"), or nullptr.
const json::value* valueAtPath(const json::object& obj, std::string_view dotted);

// Time: RFC 3339 in UTC with second precision, as the API server writes it.
std::string formatTime(std::time_t t);
std::string nowTime();
std::optional<std::time_t> parseTime(std::string_view s);

// "a.b.c" → {"a", "b", "c"}; empty parts kept ("a..b" has three).
std::vector<std::string_view> splitString(std::string_view s, char sep);

std::string randomUid();
std::string randomHex(std::size_t bytes);
std::string randomNameSuffix();  // the 5 characters generateName appends
std::string base64Encode(std::string_view data);
std::optional<std::string> base64Decode(std::string_view data);

}  // namespace knp::lab
