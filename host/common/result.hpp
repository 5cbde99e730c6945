// Errors as values for the host core (house style: no exceptions on hot or control paths).
#pragma once

#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace knp::host {

// A one-line, human-readable error. Callers prefix context as it travels up
// ("pipeline.yaml:7: instances[1]: " + inner), so the final line names file, line and field.
struct Error {
    std::string message;

    Error withContext(std::string_view prefix) const { return Error{fmt::format("{}{}", prefix, message)}; }
};

template <class... Args>
Error makeError(fmt::format_string<Args...> f, Args&&... args) {
    return Error{fmt::format(f, std::forward<Args>(args)...)};
}

// Result<T>: a T or an Error. Deliberately small: g++ 12 has no std::expected.
template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error e) : v_(std::move(e)) {}

    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    const Error& error() const& { return std::get<1>(v_); }
    Error&& error() && { return std::get<1>(std::move(v_)); }

private:
    std::variant<T, Error> v_;
};

// Result<void>.
struct Ok {};
using Status = Result<Ok>;
inline Status okStatus() { return Ok{}; }

}  // namespace knp::host
