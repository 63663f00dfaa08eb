// Sockets: addresses, an owning socket type, name resolution, and asyncio's low-level
// loop.sock_* operations (sock_connect, sock_accept, sock_recv, sock_sendall).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "corio/coro.hpp"
#include "corio/detail/io_awaiter.hpp"

namespace corio {

class EventLoop;
class Socket;
class SocketAddress;

namespace detail {
EventLoop* running_loop() noexcept;
// Closes `fd`, which `loop` may have used, after that loop's backend and the running loop's have
// forgotten it: a stale registration would leave a new file with the same number waiting
// forever. A loop of another thread's is not touched from here: it forgets and closes the fd
// itself (EventLoop::hand_off_fd), at its next tick or as it stops if it runs, else when it
// next runs or closes, so the number cannot come back for another file first (and io_uring can
// still cancel by it what the loop has in flight on the fd).
void close_fd_on(EventLoop* loop, int fd) noexcept;
// The same without closing (the fd leaves `loop`'s hands: Socket::release(), a socket now used
// on another loop). Returns the number to go on with: `fd`, or a duplicate when `loop` runs on
// another thread, which forgets and closes the original itself (see forget_keeping's comment).
int forget_keeping(EventLoop* loop, int fd) noexcept;
void note_loop(Socket& s) noexcept;
// The fd of a socket whose operation starts now, noting the loop it runs on (close() must tell
// that loop's backend the fd is gone); a closed socket throws EBADF with `closed_message`.
int fd_for_call(Socket& s, const char* closed_message = "the socket is closed");
// Takes the fd out of `s` for another corio owner on the running loop (a stream's transport):
// that loop's knowledge of it stays valid; a loop that used it before forgets it.
int hand_over_fd(Socket& s) noexcept;
// Changes whenever `s` stops holding its file (close, release, a move away or over it): a
// call that waits several times (sock_sendall) goes on only while it is unchanged, since the
// fd number may come back for another file, even in the same Socket.
std::uint32_t generation_of(const Socket& s) noexcept;
// Before binding a Unix path: a socket file left there by an earlier run is stale and removed,
// as asyncio does (only a socket; abstract names have no file).
void remove_stale_unix_socket(const SocketAddress& address) noexcept;
}  // namespace detail

// An IPv4, IPv6 or Unix-domain socket address.
class SocketAddress {
public:
    SocketAddress() = default;
    // A numeric host ("127.0.0.1", "::1"); names go through getaddrinfo().
    SocketAddress(std::string_view host, std::uint16_t port);
    static SocketAddress unix_path(std::string_view path);
    static SocketAddress from_native(const sockaddr* sa, socklen_t len);

    int family() const noexcept { return storage_.ss_family; }
    std::string host() const;          // numeric host, or the Unix path
    std::uint16_t port() const noexcept;  // 0 for Unix addresses
    std::string to_string() const;      // "127.0.0.1:8080", "[::1]:8080", or the path

    const sockaddr* native() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
    sockaddr* native() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
    socklen_t length() const noexcept { return length_; }
    void set_length(socklen_t n) noexcept { length_ = n; }

    friend bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept;

private:
    sockaddr_storage storage_{};
    socklen_t length_ = 0;
};

// An owning, non-blocking socket. Closing it first tells the backend of the loop it was made or
// used on to forget it (even when that loop is not running at the time).
class Socket {
public:
    Socket() = default;
    explicit Socket(int fd) noexcept : fd_(fd), loop_(detail::running_loop()) {}
    Socket(Socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)), loop_(std::exchange(o.loop_, nullptr)) {
        ++o.generation_;
    }
    Socket& operator=(Socket&& o) noexcept {
        if (this != &o) {
            close();
            fd_ = std::exchange(o.fd_, -1);
            loop_ = std::exchange(o.loop_, nullptr);
            ++generation_;
            ++o.generation_;
        }
        return *this;
    }
    ~Socket() { close(); }

    // A new non-blocking, close-on-exec socket; throws std::system_error.
    static Socket create(int family, int type, int protocol = 0);

    // May change when the socket is used on another loop while its loop runs on another
    // thread (that loop gets the original to forget and close; the socket goes on with a
    // duplicate): take it afresh rather than keep it.
    int fileno() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    // Gives the fd up without closing it; the loops that used it forget it first, so that the
    // new owner may close it or use it anywhere.
    int release() noexcept;
    void close() noexcept;

    void bind(const SocketAddress& address);
    void listen(int backlog = 100);
    void set_option(int level, int name, int value);
    SocketAddress getsockname() const;
    SocketAddress getpeername() const;
    void shutdown(int how);

private:
    friend void detail::note_loop(Socket& s) noexcept;
    friend int detail::hand_over_fd(Socket& s) noexcept;
    friend std::uint32_t detail::generation_of(const Socket& s) noexcept;
    int fd_ = -1;
    std::uint32_t generation_ = 0;
    EventLoop* loop_ = nullptr;  // the loop whose backend may know fd_
};

inline std::uint32_t detail::generation_of(const Socket& s) noexcept { return s.generation_; }

// Resolves a host name off the loop thread (asyncio's loop.getaddrinfo).
Coro<std::vector<SocketAddress>> getaddrinfo(std::string host, std::uint16_t port, int family = AF_UNSPEC,
                                             int type = SOCK_STREAM);

namespace detail {
// The addresses of `host`: at once for numeric hosts, through getaddrinfo() otherwise.
Coro<std::vector<SocketAddress>> resolve(std::string host, std::uint16_t port, int type);
// The sock_* calls take the socket's fd when they run, not when they are made (asyncio's take
// the socket object): a call made before a close() and run after it fails with EBADF instead
// of using the socket that got the fd number meanwhile.
Coro<> sock_sendall_on(Socket* s, std::string data);
Coro<std::string> sock_recv_on(Socket* s, std::size_t n);
Coro<std::pair<Socket, SocketAddress>> sock_accept_on(Socket* s);
Coro<std::pair<Socket, SocketAddress>> sock_accept_fd(int fd);
Coro<> sock_connect_on(Socket* s, SocketAddress address);
}  // namespace detail

inline Coro<> sock_connect(Socket& s, SocketAddress address) { return detail::sock_connect_on(&s, std::move(address)); }
inline Coro<std::pair<Socket, SocketAddress>> sock_accept(Socket& s) { return detail::sock_accept_on(&s); }
// Up to n bytes; an empty string at end of stream.
inline Coro<std::string> sock_recv(Socket& s, std::size_t n) { return detail::sock_recv_on(&s, n); }
inline Coro<> sock_sendall(Socket& s, std::string data) { return detail::sock_sendall_on(&s, std::move(data)); }

}  // namespace corio
