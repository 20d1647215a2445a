package main

import (
	"fmt"
	"io"
)

// runMigrate is replaced by the migrate command.
func runMigrate(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "custom-sd: error: migrate is not built yet")
	return 2
}
