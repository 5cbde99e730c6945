// Entry point of the privileged dataplane tests. They need root (nftables, NFQUEUE, network
// namespaces). Not root: skip (exit 77, meson's "skipped") with the reason — except under
// CI=true, where a test that cannot run fails, so a broken environment never passes as green.
// The whole process moves into a fresh network namespace first: nothing it does can touch the
// machine's own netfilter state, and everything vanishes when it exits, even on a crash.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
    bool ci = std::getenv("CI") != nullptr && std::string(std::getenv("CI")) == "true";
    std::string why;
    if (::geteuid() != 0) {
        why = "not root (nftables and NFQUEUE need CAP_NET_ADMIN)";
    } else if (::unshare(CLONE_NEWNET) != 0) {
        why = std::string("cannot create a network namespace: ") + std::strerror(errno);
    }
    if (!why.empty()) {
        std::fprintf(stderr, "privileged dataplane tests %s: %s\n", ci ? "FAILED" : "skipped", why.c_str());
        return ci ? 1 : 77;
    }
    // Loopback up, so tests can use 127.0.0.1 inside the namespace.
    if (std::system("ip link set lo up") != 0) {
        std::fprintf(stderr, "cannot bring lo up in the test namespace\n");
        return 1;
    }
    doctest::Context ctx(argc, argv);
    return ctx.run();
}
