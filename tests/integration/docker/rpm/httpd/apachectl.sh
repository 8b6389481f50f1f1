#!/bin/sh
# /usr/sbin/apachectl of the harness's stand-in, as the family's: configtest runs httpd -t; graceful
# and the rest go to httpd -k
case "${1:-}" in
    configtest) exec /usr/sbin/httpd -t ;;
    start|stop|restart|graceful|graceful-stop) exec /usr/sbin/httpd -k "$1" ;;
    -*) exec /usr/sbin/httpd "$@" ;;
    *) echo "usage: apachectl configtest|start|stop|restart|graceful|graceful-stop" >&2; exit 1 ;;
esac
