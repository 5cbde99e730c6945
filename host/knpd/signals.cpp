#include "knpd/signals.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.hpp"

namespace knp::host {

Result<std::unique_ptr<SignalThread>> SignalThread::start(std::chrono::milliseconds exitDeadline) {
    std::unique_ptr<SignalThread> t(new SignalThread());
    t->exitDeadline_ = exitDeadline;
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, s);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    t->signals_ = sys::Fd(signalfd(-1, &set, SFD_CLOEXEC));
    if (!t->signals_) return makeError("signalfd: {}", std::strerror(errno));
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) return makeError("pipe: {}", std::strerror(errno));
    t->queueRead_ = sys::Fd(p[0]);
    t->queueWrite_ = sys::Fd(p[1]);
    t->stop_ = sys::Fd(eventfd(0, EFD_CLOEXEC));
    if (!t->stop_) return makeError("eventfd: {}", std::strerror(errno));
    t->thread_ = std::thread([raw = t.get()] { raw->run(); });
    return t;
}

SignalThread::~SignalThread() {
    if (!thread_.joinable()) return;
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(stop_.get(), &one, sizeof one);
    thread_.join();
}

std::optional<int> SignalThread::next() {
    unsigned char sig = 0;
    if (::read(queueRead_.get(), &sig, 1) != 1) return std::nullopt;
    return sig;
}

void SignalThread::run() noexcept {
    std::optional<std::chrono::steady_clock::time_point> deadline;
    while (true) {
        pollfd fds[2] = {{signals_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
        int timeout = -1;
        if (deadline) {
            auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
            timeout = static_cast<int>(std::max<int64_t>(0, left.count()));
        }
        int r = ::poll(fds, 2, timeout);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0 && deadline) {
            // The control thread did not get out in time; nothing it holds can be trusted to
            // unwind, so no destructors run.
            logf(LogLevel::Error, "knpd: still running {}ms after the stop signal; exiting now", exitDeadline_.count());
            ::_exit(1);
        }
        if (r < 0 || fds[1].revents != 0) return;
        signalfd_siginfo si{};
        if (::read(signals_.get(), &si, sizeof si) != sizeof si) continue;
        auto sig = static_cast<unsigned char>(si.ssi_signo);
        [[maybe_unused]] ssize_t n = ::write(queueWrite_.get(), &sig, 1);
        if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && !deadline)
            deadline = std::chrono::steady_clock::now() + exitDeadline_;
    }
}

}  // namespace knp::host
