#include "ops/control_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <boost/json.hpp>

#include "sys/handles.hpp"

namespace knp::host {

namespace json = boost::json;

namespace {
constexpr size_t kMaxResponse = 16u << 20;
}

Result<json::value> controlRequest(const std::string& socketPath, const json::object& request, int timeoutMs) {
    auto failed = [&](std::string_view what, int err) {
        return makeError("{}: {}: {}{}", socketPath, what, std::strerror(err),
                         err == ENOENT || err == ECONNREFUSED ? " (is knpd running? see --socket)" : "");
    };
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socketPath.size() >= sizeof addr.sun_path) return makeError("{}: path too long for a unix socket", socketPath);
    std::memcpy(addr.sun_path, socketPath.data(), socketPath.size());
    sys::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return failed("socket", errno);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return failed("connect", errno);

    std::string out = json::serialize(request) + "\n";
    for (size_t sent = 0; sent < out.size();) {
        ssize_t n = ::send(fd.get(), out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failed("send", errno);
        sent += static_cast<size_t>(n);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    std::string in;
    char buf[65536];
    while (in.find('\n') == std::string::npos) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd.get(), POLLIN, 0};
        int r = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) return makeError("{}: knpd did not answer within {} ms", socketPath, timeoutMs);
        if (r < 0) return failed("poll", errno);
        ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failed("recv", errno);
        if (n == 0) return makeError("{}: knpd closed the connection without an answer", socketPath);
        in.append(buf, static_cast<size_t>(n));
        if (in.size() > kMaxResponse) return makeError("{}: response larger than {} bytes", socketPath, kMaxResponse);
    }
    in.resize(in.find('\n'));
    boost::system::error_code ec;
    json::value v = json::parse(in, ec);
    if (ec || !v.is_object()) return makeError("{}: knpd sent something that is not a JSON object", socketPath);
    const json::object& o = v.get_object();
    const json::value* ok = o.if_contains("ok");
    if (ok == nullptr || !ok->is_bool() || !ok->get_bool()) {
        const json::value* err = o.if_contains("error");
        return Error{err != nullptr && err->is_string() ? std::string(err->get_string()) : "knpd refused the request"};
    }
    const json::value* result = o.if_contains("result");
    return result != nullptr ? *result : json::value(nullptr);
}

}  // namespace knp::host
