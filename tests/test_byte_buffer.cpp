// The streams' byte buffer (an internal type: this file and test_frame_alloc.cpp are the only
// tests that reach into corio/detail).
#include <gtest/gtest.h>

#include <string>

#include "corio/detail/byte_buffer.hpp"

using corio::detail::ByteBuffer;

TEST(ByteBuffer, AppendConsumeInOrder) {
    ByteBuffer b;
    b.append("hello ");
    b.append("world");
    EXPECT_EQ(b.view(), "hello world");
    b.consume(6);
    EXPECT_EQ(b.view(), "world");
    EXPECT_EQ(b.take(3), "wor");
    EXPECT_EQ(b.view(), "ld");
}

TEST(ByteBuffer, EmptiedAfterABurstGivesTheMemoryBackOnceTheBurstIsOver) {
    ByteBuffer b;
    b.append(std::string(ByteBuffer::kKeptCapacity + 1, 'x'));
    std::size_t grown = b.capacity();
    EXPECT_GT(grown, ByteBuffer::kKeptCapacity);
    b.consume(b.size() - 1);
    EXPECT_EQ(b.capacity(), grown);  // not while bytes remain
    b.consume(1);
    EXPECT_EQ(b.capacity(), grown);  // this cycle needed it: the next big message may too
    b.append("small");
    b.consume(5);
    EXPECT_EQ(b.capacity(), 0u);  // a cycle that did not: the burst is over
    b.append("again");
    EXPECT_EQ(b.view(), "again");
}

TEST(ByteBuffer, BigMessagesOneAfterAnotherKeepTheirMemory) {
    ByteBuffer b;
    const std::string message(1024 * 1024, 'm');
    b.append(message);
    const char* where = b.view().data();
    for (int i = 0; i < 5; ++i) {
        b.consume(message.size());
        b.append(message);
        EXPECT_EQ(b.view().data(), where);
    }
}

TEST(ByteBuffer, EmptiedKeepsAnOrdinaryReadsWorthOfMemory) {
    ByteBuffer b;
    b.prepare(64 * 1024);
    std::size_t capacity = b.capacity();
    b.append("x");
    b.consume(1);
    EXPECT_EQ(b.capacity(), capacity);
    EXPECT_EQ(b.room(), capacity);  // and starts again at offset 0
}

// A read into the free room is in flight while another reader takes every buffered byte: the
// free room must stay where the read was told to write.
TEST(ByteBuffer, PinnedBufferKeepsItsEndWhenEmptied) {
    ByteBuffer b;
    b.append("cde");
    char* in_flight = b.prepare(10);
    b.pin(true);
    b.consume(3);
    EXPECT_TRUE(b.empty());
    EXPECT_EQ(b.tail(), in_flight);
    std::string arrived = "0123456789";
    arrived.copy(in_flight, arrived.size());
    b.commit(arrived.size());
    b.pin(false);
    EXPECT_EQ(b.view(), "0123456789");
    b.consume(10);
    b.pin(true);
    b.pin(false);  // unpinned empty: back to offset 0
    EXPECT_EQ(b.room(), b.capacity());
}
