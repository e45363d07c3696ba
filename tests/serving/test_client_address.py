"""Who the client is: the peer, or what trusted proxies say in X-Forwarded-For
(serving/client_address.py)."""

from __future__ import annotations

import pytest

from mnist_mlops.monitoring.settings import ip_network
from serving.client_address import client_address


def trusting(*entries: str):
    return tuple(ip_network(entry) for entry in entries)


NGINX = trusting("127.0.0.1")


@pytest.mark.parametrize("trusted", [(), trusting("10.0.0.0/8")])
def test_an_untrusted_peer_is_the_client_whatever_its_header_says(trusted):
    assert client_address("203.0.113.5", "198.51.100.7", trusted) == "203.0.113.5"
    assert client_address("127.0.0.1", "198.51.100.7, 10.0.0.1", trusted) == "127.0.0.1"


def test_a_trusted_proxy_names_the_client():
    assert client_address("127.0.0.1", "203.0.113.5", NGINX) == "203.0.113.5"


def test_what_the_client_wrote_left_of_the_proxy_s_entry_is_ignored():
    # nginx appends the address it saw to the header the client sent: the client chose
    # "198.51.100.7", not "203.0.113.5"
    assert client_address("127.0.0.1", "198.51.100.7, 203.0.113.5", NGINX) == "203.0.113.5"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right():
    trusted = trusting("127.0.0.1", "192.0.2.10", "192.0.2.11")
    chain = "198.51.100.7, 203.0.113.5, 192.0.2.10, 192.0.2.11"
    assert client_address("127.0.0.1", chain, trusted) == "203.0.113.5"


def test_networks_are_trusted_as_a_whole():
    trusted = trusting("10.0.0.0/8", "fd00::/8")
    assert client_address("10.1.2.3", "203.0.113.5, 10.9.9.9", trusted) == "203.0.113.5"
    assert client_address("fd00::1", "2001:db8::7, fd12::3", trusted) == "2001:db8::7"
    assert client_address("11.0.0.1", "203.0.113.5", trusted) == "11.0.0.1"


def test_a_header_of_trusted_addresses_only_leaves_the_leftmost():
    trusted = trusting("10.0.0.0/8")
    assert client_address("10.0.0.4", "10.0.0.2, 10.0.0.3", trusted) == "10.0.0.2"


@pytest.mark.parametrize("header", ["", "   ", ","])
def test_no_forwarded_address_leaves_the_trusted_peer(header):
    assert client_address("127.0.0.1", header, NGINX) == "127.0.0.1"


@pytest.mark.parametrize(
    ("header", "client"),
    [
        ("junk", "127.0.0.1"),  # unreadable right at the proxy: the proxy is the client
        ("203.0.113.5, unknown", "127.0.0.1"),  # nginx's word for a unix socket peer
        ("203.0.113.5:4711", "127.0.0.1"),  # ports are not part of X-Forwarded-For
        ("[2001:db8::1]", "127.0.0.1"),
        ("203.0.113.5, ", "127.0.0.1"),  # an empty entry is unreadable too
        ("junk, 203.0.113.5", "203.0.113.5"),  # junk left of the client is never reached
        ("203.0.113.5;198.51.100.7", "127.0.0.1"),
    ],
)
def test_an_unreadable_entry_stops_the_walk_at_the_last_trusted_address(header, client):
    assert client_address("127.0.0.1", header, NGINX) == client


def test_junk_cannot_pick_a_new_key_each_time():
    trusted = trusting("10.0.0.0/8")
    keys = {client_address("10.0.0.9", f"random-{i}, 10.0.0.2", trusted) for i in range(20)}
    assert keys == {"10.0.0.2"}


def test_one_client_is_one_key_however_its_address_is_written():
    assert client_address("::ffff:203.0.113.5", "", ()) == "203.0.113.5"
    assert client_address("2001:DB8:0::1", "", ()) == "2001:db8::1"
    assert client_address("127.0.0.1", " 2001:0db8::0001 ", NGINX) == "2001:db8::1"
    # an IPv4-mapped peer is matched against IPv4 networks
    assert client_address("::ffff:127.0.0.1", "203.0.113.5", NGINX) == "203.0.113.5"


def test_other_ip_versions_are_simply_not_trusted():
    assert client_address("::1", "203.0.113.5", NGINX) == "::1"
    assert client_address("127.0.0.1", "203.0.113.5", trusting("::1")) == "127.0.0.1"


def test_a_peer_that_is_not_an_address_is_its_own_key():
    assert client_address("", "203.0.113.5", NGINX) == ""  # a call without HTTP
    assert client_address("/run/mnist.sock", "203.0.113.5", NGINX) == "/run/mnist.sock"
