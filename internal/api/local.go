package api

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Local calls seatledger's RPCs in process, through the same interceptors
// as the gRPC server (access control, audit, logs, read cache, error
// mapping): the HTTP/JSON gateway uses it instead of a gRPC connection to
// its own process, which would marshal every request and answer twice
// more and cross the loopback. It implements grpc.ClientConnInterface, for
// unary RPCs; the API has no streaming one.
type Local struct {
	methods map[string]localMethod // by full method name, "/pkg.Service/Method"
	unary   grpc.UnaryServerInterceptor
	cache   *readCache // nil without a read cache
}

// ReadCacheStats reports the API's read cache (shared by gRPC and REST).
func (l *Local) ReadCacheStats() ReadCacheStats { return l.cache.stats() }

type localMethod struct {
	impl    any
	handler grpc.MethodHandler
}

// localRegistrar registers services with a gRPC server and remembers
// them for Local.
type localRegistrar struct {
	next  grpc.ServiceRegistrar
	local *Local
}

func (r localRegistrar) RegisterService(desc *grpc.ServiceDesc, impl any) {
	r.next.RegisterService(desc, impl)
	for _, m := range desc.Methods {
		r.local.methods["/"+desc.ServiceName+"/"+m.MethodName] = localMethod{impl: impl, handler: m.Handler}
	}
}

// Invoke calls method with args and fills reply, as a gRPC client would:
// the caller's outgoing metadata arrives as the handler's incoming
// metadata, headers and trailers the handler sets come back through
// grpc.Header and grpc.Trailer options, and errors are statuses.
func (l *Local) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	m, ok := l.methods[method]
	if !ok {
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	in, ok1 := args.(proto.Message)
	out, ok2 := reply.(proto.Message)
	if !ok1 || !ok2 {
		return status.Errorf(codes.Internal, "%s: request and reply must be protocol buffers", method)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	ctx = metadata.NewIncomingContext(ctx, md.Copy())
	stream := &localStream{method: method}
	ctx = grpc.NewContextWithServerTransportStream(ctx, stream)
	// The handler decodes into a request of its own: a copy, so that
	// neither side sees the other's later changes.
	dec := func(v any) error {
		proto.Merge(v.(proto.Message), in)
		return nil
	}
	resp, err := m.handler(m.impl, ctx, dec, l.unary)
	stream.deliver(opts)
	if err != nil {
		return status.Convert(err).Err()
	}
	// Answers may be shared (the read cache keeps them): copy.
	proto.Merge(out, resp.(proto.Message))
	return nil
}

// NewStream is not supported: the API has no streaming RPC.
func (l *Local) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "streaming RPCs are not served in process")
}

// chainUnary composes interceptors, the first outermost, as
// grpc.ChainUnaryInterceptor does for the server.
func chainUnary(interceptors []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		next := handler
		for i := len(interceptors) - 1; i >= 0; i-- {
			ic, inner := interceptors[i], next
			next = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, inner) }
		}
		return next(ctx, req)
	}
}

// localStream is the grpc.ServerTransportStream of an in-process call:
// it keeps the headers and trailers the handler sets.
type localStream struct {
	method string

	mu              sync.Mutex
	header, trailer metadata.MD
}

func (s *localStream) Method() string { return s.method }

func (s *localStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.header = metadata.Join(s.header, md)
	return nil
}

func (s *localStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }

func (s *localStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

// deliver hands headers and trailers to the call's grpc.Header and
// grpc.Trailer options.
func (s *localStream) deliver(opts []grpc.CallOption) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = s.header.Copy()
		case grpc.TrailerCallOption:
			*o.TrailerAddr = s.trailer.Copy()
		}
	}
}
