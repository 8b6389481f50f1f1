#!/bin/sh
# /usr/sbin/httpd of the harness's stand-in: Debian's apache2 binary (compiled for /etc/apache2) told the
# family's ServerRoot and main file; the process is still called httpd
exec /usr/libexec/actvt-test-httpd/httpd -d /etc/httpd -f conf/httpd.conf "$@"
