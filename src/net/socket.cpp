#include "corio/socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <system_error>
#include <utility>

#include "corio/executor.hpp"
#include "corio/loop.hpp"

namespace corio {

namespace {
[[noreturn]] void throw_errno(const char* what) { throw std::system_error(errno, std::generic_category(), what); }
}  // namespace

SocketAddress::SocketAddress(std::string_view host_view, std::uint16_t port) {
    std::string host(host_view);
    if (host.empty() || host == "0.0.0.0") host = "0.0.0.0";
    if (host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage_);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage_);
    if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        length_ = sizeof(sockaddr_in);
    } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        length_ = sizeof(sockaddr_in6);
    } else {
        throw std::invalid_argument("corio::SocketAddress: not a numeric host: '" + host +
                                    "' (resolve names with corio::getaddrinfo)");
    }
}

SocketAddress SocketAddress::unix_path(std::string_view path) {
    SocketAddress a;
    auto* un = reinterpret_cast<sockaddr_un*>(&a.storage_);
    // Up to the whole of sun_path, as Python allows: a path counts its terminating NUL when it
    // fits (Linux takes one that fills sun_path without it), an abstract name (a leading NUL)
    // is exactly its bytes, as every other program spells it.
    if (path.size() > sizeof(un->sun_path)) throw std::invalid_argument("corio: Unix socket path too long");
    bool abstract = !path.empty() && path[0] == '\0';
    bool terminated = !abstract && path.size() < sizeof(un->sun_path);
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, path.data(), path.size());
    a.length_ = socklen_t(offsetof(sockaddr_un, sun_path) + path.size() + (terminated ? 1 : 0));
    return a;
}

SocketAddress SocketAddress::from_native(const sockaddr* sa, socklen_t len) {
    SocketAddress a;
    if (len > sizeof a.storage_) len = sizeof a.storage_;
    std::memcpy(&a.storage_, sa, len);
    a.length_ = len;
    return a;
}

std::string SocketAddress::host() const {
    char buf[INET6_ADDRSTRLEN] = {};
    switch (storage_.ss_family) {
        case AF_INET:
            ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf, sizeof buf);
            return buf;
        case AF_INET6:
            ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf, sizeof buf);
            return buf;
        case AF_UNIX: {
            const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
            std::size_t n = length_ > offsetof(sockaddr_un, sun_path) ? length_ - offsetof(sockaddr_un, sun_path) : 0;
            if (n > 0 && un->sun_path[0] == '\0') return std::string(un->sun_path, n);  // abstract
            return std::string(un->sun_path, strnlen(un->sun_path, n));
        }
        default: return {};
    }
}

std::uint16_t SocketAddress::port() const noexcept {
    if (storage_.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
    if (storage_.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    return 0;
}

std::string SocketAddress::to_string() const {
    std::string out;
    if (storage_.ss_family == AF_INET6) {
        out += '[';
        out += host();
        out += "]:";
        out += std::to_string(port());
    } else if (storage_.ss_family == AF_INET) {
        out += host();
        out += ':';
        out += std::to_string(port());
    } else {
        out = host();
    }
    return out;
}

bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept {
    return a.length_ == b.length_ && std::memcmp(&a.storage_, &b.storage_, a.length_) == 0;
}

Socket Socket::create(int family, int type, int protocol) {
    int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0) throw_errno("socket");
    return Socket(fd);
}

int Socket::release() noexcept {
    int fd = std::exchange(fd_, -1);
    EventLoop* loop = std::exchange(loop_, nullptr);
    if (fd < 0) return fd;
    ++generation_;
    // The running loop may have used the fd too (through its number alone): forgetting an fd
    // it never saw costs nothing.
    if (EventLoop* running = detail::running_loop(); running && loop && running != loop) running->backend().release_fd(fd);
    return detail::forget_keeping(loop, fd);
}

void Socket::close() noexcept {
    if (fd_ < 0) return;
    detail::close_fd_on(loop_, fd_);
    fd_ = -1;
    loop_ = nullptr;
    ++generation_;
}

namespace detail {

void close_fd_on(EventLoop* loop, int fd) noexcept {
    EventLoop* running = running_loop();
    if (loop && loop != running) {
        std::unique_lock alive = EventLoop::lock_if_alive(loop);
        // A closed loop's backend holds nothing more.
        if (alive && !loop->is_closed()) {
            if (loop->owned_by_this_thread() && !loop->is_running()) {
                loop->backend().release_fd(fd);
            } else if (loop->hand_off_fd(fd, EventLoop::FdHandOffMode::Close)) {
                return;  // it forgets and closes the fd on its own thread
            }
        }
    }
    // The running loop may have used the fd too (through its number alone): forgetting an fd
    // it never saw costs nothing.
    if (running) running->backend().release_fd(fd);
    ::close(fd);
}

int forget_keeping(EventLoop* loop, int fd) noexcept {
    EventLoop* running = running_loop();
    if (!loop || loop == running) {
        if (running) running->backend().release_fd(fd);
        return fd;
    }
    std::unique_lock alive = EventLoop::lock_if_alive(loop);
    if (!alive || loop->is_closed()) return fd;  // a closed loop's backend holds nothing more
    if (loop->owned_by_this_thread() && !loop->is_running()) {
        loop->backend().release_fd(fd);
        return fd;
    }
    // Another thread's loop forgets on its own thread, later. One running there may meanwhile
    // see the caller close the fd and the number go to another file, which it would forget
    // instead: it gets the original to forget and close, the caller a duplicate (same socket,
    // same close-on-exec flag, never 0-2). One idle there forgets before it runs anything
    // again: the caller keeps its fd.
    const int fd_flags = ::fcntl(fd, F_GETFD);
    const int copy = ::fcntl(fd, fd_flags >= 0 && (fd_flags & FD_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 3);
    if (copy < 0) {  // no fd to spare: the number alone, at the race's risk
        (void)loop->hand_off_fd(fd, EventLoop::FdHandOffMode::Forget);
        return fd;
    }
    if (loop->hand_off_fd(fd, EventLoop::FdHandOffMode::CloseIfRunning)) return copy;
    ::close(copy);
    return fd;
}

int hand_over_fd(Socket& s) noexcept {
    // The new owner (a transport of the running loop) registers the fd afresh: a loop that
    // used it before forgets it first. A view (no loop) keeps the registration it has.
    int fd = std::exchange(s.fd_, -1);
    EventLoop* loop = std::exchange(s.loop_, nullptr);
    ++s.generation_;
    if (fd >= 0 && loop && loop != running_loop()) fd = forget_keeping(loop, fd);
    return fd;
}

void remove_stale_unix_socket(const SocketAddress& address) noexcept {
    if (address.family() != AF_UNIX) return;
    const auto* un = reinterpret_cast<const sockaddr_un*>(address.native());
    if (address.length() <= socklen_t(offsetof(sockaddr_un, sun_path)) || un->sun_path[0] == '\0') return;
    struct stat st {};
    if (::stat(un->sun_path, &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(un->sun_path);
}

void note_loop(Socket& s) noexcept {
    EventLoop* loop = running_loop();
    if (!loop || s.loop_ == loop) return;
    // Used on another loop than before: the one before forgets the fd now, or a later socket
    // given the same number would find that loop's stale registration (epoll: never added).
    if (s.loop_ && s.fd_ >= 0) s.fd_ = forget_keeping(s.loop_, s.fd_);
    s.loop_ = loop;
}

}  // namespace detail

void Socket::bind(const SocketAddress& a) {
    if (::bind(fd_, a.native(), a.length()) < 0) throw std::system_error(errno, std::generic_category(), "bind " + a.to_string());
}

void Socket::listen(int backlog) {
    if (::listen(fd_, backlog) < 0) throw_errno("listen");
}

void Socket::set_option(int level, int name, int value) {
    if (::setsockopt(fd_, level, name, &value, sizeof value) < 0) throw_errno("setsockopt");
}

SocketAddress Socket::getsockname() const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) < 0) throw_errno("getsockname");
    return SocketAddress::from_native(reinterpret_cast<sockaddr*>(&ss), len);
}

SocketAddress Socket::getpeername() const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&ss), &len) < 0) throw_errno("getpeername");
    return SocketAddress::from_native(reinterpret_cast<sockaddr*>(&ss), len);
}

void Socket::shutdown(int how) {
    if (::shutdown(fd_, how) < 0) throw_errno("shutdown");
}

namespace {

std::vector<SocketAddress> blocking_getaddrinfo(const std::string& host, std::uint16_t port, int family, int type) {
    addrinfo hints{};
    hints.ai_family = family;
    hints.ai_socktype = type;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    // "" is a name, as Python passes it: no such host (EAI_NONAME), not the loopback a null node
    // would give.
    int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
    if (rc != 0) {
        if (rc == EAI_SYSTEM) throw std::system_error(errno, std::generic_category(), "getaddrinfo " + host);
        throw std::system_error(rc, gai_category(), "getaddrinfo " + host);
    }
    std::vector<SocketAddress> out;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) out.push_back(SocketAddress::from_native(ai->ai_addr, ai->ai_addrlen));
    ::freeaddrinfo(res);
    return out;
}

}  // namespace

Coro<std::vector<SocketAddress>> getaddrinfo(std::string host, std::uint16_t port, int family, int type) {
    co_return co_await to_thread(blocking_getaddrinfo, host, port, family, type);
}

namespace detail {

Coro<std::vector<SocketAddress>> resolve(std::string host, std::uint16_t port, int type) {
    try {
        co_return std::vector<SocketAddress>{SocketAddress(host, port)};
    } catch (const std::invalid_argument&) {
    }
    co_return co_await getaddrinfo(host, port, AF_UNSPEC, type);
}

int fd_for_call(Socket& s, const char* closed_message) {
    if (s.fileno() < 0) throw std::system_error(EBADF, std::generic_category(), closed_message);
    note_loop(s);
    return s.fileno();
}

Coro<> sock_sendall_on(Socket* s, std::string data) {
    int fd = fd_for_call(*s);
    const std::uint32_t generation = generation_of(*s);
    std::size_t sent = 0;
    while (sent < data.size()) {
        // Closed (or released, or replaced) between two sends, after one completed and before
        // this task resumed: the fd number may already be another file's, which must not get
        // the rest. (The same file may have a new number, when used on another loop.)
        if (sent != 0) {
            if (generation_of(*s) != generation || s->fileno() < 0)
                throw std::system_error(ECANCELED, std::generic_category(), "sock_sendall: the socket was closed");
            fd = s->fileno();
        }
        IoAwaiter io;
        io.op.kind = IoOperation::Kind::Send;
        io.op.fd = fd;
        io.op.buffer = data.data() + sent;
        io.op.length = data.size() - sent;
        sent += std::size_t(co_await io);
    }
}

Coro<std::string> sock_recv_on(Socket* s, std::size_t n) {
    const int fd = fd_for_call(*s);
    if (n == 0) co_return std::string();  // asyncio: b'' at once (a recv of 0 bytes would wait)
    std::string buf(n, '\0');
    IoAwaiter io;
    io.op.kind = IoOperation::Kind::Recv;
    io.keep_completed = true;
    io.op.fd = fd;
    io.op.buffer = buf.data();
    io.op.length = n;
    long got = co_await io;
    buf.resize(std::size_t(got));
    co_return buf;
}

Coro<std::pair<Socket, SocketAddress>> sock_accept_fd(int fd) {
    SocketAddress peer;
    IoAwaiter io;
    io.op.kind = IoOperation::Kind::Accept;
    io.keep_completed = true;
    io.op.fd = fd;
    io.op.address = peer.native();
    io.op.address_length = sizeof(sockaddr_storage);
    long conn = co_await io;
    peer.set_length(io.op.address_length);
    co_return std::pair<Socket, SocketAddress>(Socket(int(conn)), peer);
}

Coro<std::pair<Socket, SocketAddress>> sock_accept_on(Socket* s) {
    Coro<std::pair<Socket, SocketAddress>> accepting = sock_accept_fd(fd_for_call(*s));
    co_return co_await std::move(accepting);
}

Coro<> sock_connect_on(Socket* s, SocketAddress address) {
    const int fd = fd_for_call(*s);
    const std::uint32_t generation = generation_of(*s);
    IoAwaiter io;
    io.op.kind = IoOperation::Kind::Connect;
    io.op.fd = fd;
    io.op.address = address.native();
    io.op.address_length = address.length();
    io.return_errors = true;
    long r = co_await io;
    // EALREADY: an earlier connect, cancelled or timed out, is still in progress in the kernel.
    // asyncio takes it as "not yet" (a BlockingIOError) and waits, as epoll's path happens to.
    if (r != -EALREADY) {
        if (r < 0) throw std::system_error(int(-r), std::generic_category());
        co_return;
    }
    IoAwaiter writable;
    writable.op.kind = IoOperation::Kind::PollOut;
    writable.op.fd = fd;
    co_await writable;
    if (generation_of(*s) != generation || s->fileno() < 0)
        throw std::system_error(ECANCELED, std::generic_category(), "sock_connect: the socket was closed");
    const int now = s->fileno();  // the same file (a new number if used on another loop meanwhile)
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(now, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err != 0) throw std::system_error(err, std::generic_category());
}

}  // namespace detail
}  // namespace corio
