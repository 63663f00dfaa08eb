// Helpers shared by the I/O suites.
#pragma once

#include <corio/backend.hpp>
#include <corio/coro.hpp>
#include <corio/loop.hpp>
#include <corio/sleep.hpp>
#include <corio/socket.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <exception>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <utility>

// Built with ASan (+UBSan): a few tests that exhaust the process's fds cannot run there, since
// UBSan's vptr check probes memory through a pipe (sanitizer_common's IsAccessibleMemoryRange)
// and, with no fd left, reports false "invalid vptr" errors.
#if defined(__SANITIZE_ADDRESS__)
#define CORIO_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORIO_TEST_UNDER_ASAN 1
#endif
#endif

// Awaits `...` (bound to a named local first) and keeps a copy of the E it throws in `var`.
#define CO_CATCH(E, var, ...)                        \
    std::optional<E> var;                            \
    {                                                \
        auto corio_op_ = (__VA_ARGS__);              \
        try {                                        \
            (void)(co_await std::move(corio_op_));   \
        } catch (const E& corio_e_) {                \
            var.emplace(corio_e_);                   \
        }                                            \
    }

namespace corio_test {

// The process's open fds, without the listing's own directory fd (closed by the time it is read).
inline std::set<int> open_fd_set() {
    std::set<int> listed;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) listed.insert(std::stoi(e.path().filename()));
    std::set<int> fds;
    for (int fd : listed)
        if (::fcntl(fd, F_GETFD) >= 0) fds.insert(fd);
    return fds;
}
inline int open_fds() { return int(open_fd_set().size()); }

// A few loop ticks (never a real sleep): lets finished tasks release what they hold.
inline corio::Coro<> settle() {
    for (int i = 0; i < 10; ++i) co_await corio::sleep(std::chrono::milliseconds(0));
}

// GTEST_SKIP returns from the function it is in: a coroutine cannot hold it.
inline void skip_test(const std::string& why) { GTEST_SKIP() << why; }

// Runs the scenario `make()` in its own coroutine (so that everything it opened is gone when
// it returns) and checks that no fd and no backend operation is left behind.
template <class F>
corio::Coro<> without_leaks(F make) {
    int fds_before = open_fds();
    std::size_t ops_before = corio::get_running_loop().backend().pending();
    {
        corio::Coro<> scenario = make();
        co_await std::move(scenario);
    }
    co_await settle();
    EXPECT_EQ(open_fds(), fds_before) << "fds leaked";
    EXPECT_EQ(corio::get_running_loop().backend().pending(), ops_before) << "backend operations left behind";
}

// A connected pair of non-blocking Unix sockets (stream, or SOCK_DGRAM / SOCK_SEQPACKET).
inline std::pair<corio::Socket, corio::Socket> unix_socket_pair(int type = SOCK_STREAM) {
    int fds[2];
    if (::socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
        throw std::system_error(errno, std::generic_category(), "socketpair");
    return {corio::Socket(fds[0]), corio::Socket(fds[1])};
}

// The OS error a failure carries (a std::system_error's code), 0 for none or another exception.
inline int os_error_of(const std::exception_ptr& e) {
    if (!e) return 0;
    try {
        std::rethrow_exception(e);
    } catch (const std::system_error& x) {
        return x.code().value();
    } catch (...) {
    }
    return 0;
}

// Sends `request` over a new connection to the Unix stream socket at `path` and returns all the
// server answers, up to its end (the introspection endpoint's protocol).
inline corio::Coro<std::string> unix_request(std::string path, std::string request) {
    corio::Socket s = corio::Socket::create(AF_UNIX, SOCK_STREAM);
    corio::Coro<> connecting = corio::sock_connect(s, corio::SocketAddress::unix_path(path));
    co_await std::move(connecting);
    corio::Coro<> sending = corio::sock_sendall(s, std::move(request));
    co_await std::move(sending);
    std::string answer;
    for (;;) {
        corio::Coro<std::string> receiving = corio::sock_recv(s, 4096);
        std::string part = co_await std::move(receiving);
        if (part.empty()) break;
        answer += part;
    }
    co_return answer;
}

}  // namespace corio_test
