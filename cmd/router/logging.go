package main

import (
	"io"
	"log/slog"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// newLogger returns the router's single log stream and routes client-go's
// klog and controller-runtime's logr into the same handler.
func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}

	var handler slog.Handler
	if format == "text" {
		handler = slog.NewTextHandler(w, opts)
	} else {
		handler = slog.NewJSONHandler(w, opts)
	}
	logger := slog.New(handler)

	klog.SetSlogLogger(logger)
	ctrllog.SetLogger(logr.FromSlogHandler(handler))

	return logger
}
