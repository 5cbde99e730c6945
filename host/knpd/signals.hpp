// knpd's signals: SIGTERM, SIGINT and SIGHUP are read on a thread of their own (signalfd) and
// queued for the control loop, so no handler ever runs on an arbitrary thread.
//
// The thread also bounds shutdown: a stop signal arms a deadline, and a process still running
// when it passes (a plugin or the API server hanging the control thread, a reader stuck in a
// plugin) logs one line and leaves with _exit(1). Fail-open rules stay and bypass the queues
// of the exited process; fail-closed rules stay and drop what they would have queued: the
// behaviour of a crash, which is what a hung agent amounts to.
//
// THREAD: start() before any other thread exists (the others inherit the blocked mask); fd()
// and next() on the control thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <thread>

#include "common/result.hpp"
#include "sys/handles.hpp"

namespace knp::host {

class SignalThread {
public:
    static Result<std::unique_ptr<SignalThread>> start(std::chrono::milliseconds exitDeadline);
    ~SignalThread();
    SignalThread(const SignalThread&) = delete;
    SignalThread& operator=(const SignalThread&) = delete;

    // Readable while signals are queued.
    int fd() const noexcept { return queueRead_.get(); }
    // The next queued signal, if any. Non-blocking.
    std::optional<int> next();

private:
    SignalThread() = default;
    void run() noexcept;

    std::chrono::milliseconds exitDeadline_{};
    sys::Fd signals_;                 // signalfd
    sys::Fd queueRead_, queueWrite_;  // a pipe: one byte per signal
    sys::Fd stop_;                    // eventfd: the destructor writes it
    std::thread thread_;
};

}  // namespace knp::host
