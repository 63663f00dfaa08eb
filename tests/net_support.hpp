// Helpers shared by the I/O suites.
#pragma once

#include <corio/socket.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <exception>
#include <system_error>
#include <utility>

namespace corio_test {

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

}  // namespace corio_test
